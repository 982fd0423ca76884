//! The SageMaker IP Insights endpoint as a scorer ([`SageMakerScorer`], which also talks to
//! `ipsight serve`), and [`scorer_from_env`] which picks a scorer for a Lambda at cold start
//! ([`AnyScorer`]: the endpoint, or `ipsight-ports`' embedded or reloading model).
use std::path::PathBuf;
use std::sync::Arc;

use ipsight_model::{Calibration, Model, NewPrincipals};
use ipsight_ports::baseline::{self, Baseline};
use ipsight_ports::reload::{ReloadingScorer, DEFAULT_CHECK_SECONDS};
use ipsight_ports::{
    new_principals_name, unusual_percentile, EmbeddedScorer, ObjectRef, ObjectStore, Pair, Score,
    ScoreError, Scorer, ScorerInitError,
};

use crate::config::{ConfigError, Env};
use crate::s3::S3Store;

/// Default location of a model bundled with a Lambda (package or layer) when `MODEL_URI` is unset.
pub const DEFAULT_MODEL_PATH: &str = "/opt/ipsight/model.ipsm";

/// Where a model file lives: `s3://bucket/key` or a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    S3(ObjectRef),
    Local(PathBuf),
}

impl ModelLocation {
    pub fn parse(s: &str) -> Result<Self, ScorerInitError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            match rest.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => {
                    Ok(Self::S3(ObjectRef::new(b, k)))
                }
                _ => Err(ScorerInitError::Config(format!(
                    "{s:?} is not an s3://bucket/key URI"
                ))),
            }
        } else if s.is_empty() {
            Err(ScorerInitError::Config("empty model location".into()))
        } else {
            Ok(Self::Local(PathBuf::from(s)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SageMaker endpoint
// ---------------------------------------------------------------------------------------------

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sagemakerruntime::error::SdkError;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use futures::StreamExt;

/// Tuning of [`SageMakerScorer`]. The defaults suit a single-instance real-time endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SageMakerOptions {
    /// Largest request body. SageMaker documents the real-time payload limit as "6 MB"; staying
    /// under 6,000,000 bytes is safe whichever unit the service applies.
    pub max_body_bytes: usize,
    /// Most pairs per request. The *response* is limited to 6 MB too and a prediction
    /// (`{"dot_product":-1.2345678e-5},`) can take 30 bytes, more than a short CSV line: 150,000
    /// pairs keep the response under about 4.5 MB.
    pub max_pairs_per_request: usize,
    /// Requests in flight at once for one `score` call.
    pub concurrency: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Time budget per request across all attempts and back-off sleeps: no new attempt starts after it.
    pub max_retry_time: Duration,
    /// Back-off before retry n is uniformly random in `[0, min(max_backoff, base_backoff·2ⁿ)]`
    /// ("full jitter"), so throttled callers spread out instead of retrying in lock step.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Timeout of one attempt (SageMaker gives a container 60 s per invocation).
    pub attempt_timeout: Duration,
}

impl Default for SageMakerOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 6_000_000 - 16 * 1024,
            max_pairs_per_request: 150_000,
            concurrency: 4,
            max_attempts: 6,
            max_retry_time: Duration::from_secs(30),
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(65),
        }
    }
}

/// A SageMaker IP Insights endpoint (or `ipsight serve`) through `InvokeEndpoint`: `text/csv` in,
/// `application/json` out, pairs packed into as few requests as the limits allow.
#[derive(Debug, Clone)]
pub struct SageMakerScorer {
    client: aws_sdk_sagemakerruntime::Client,
    endpoint: String,
    opts: SageMakerOptions,
    calibration: Option<Arc<Calibration>>,
    /// `BASELINE_URI`: combined with the endpoint's dot products (IPv4 pairs).
    baseline: Option<Baseline>,
    /// Scores the IPv6 pairs, which the IPv4-only endpoint never receives.
    ipv6: Option<EmbeddedScorer>,
    calls: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    ipv4_pairs: Arc<AtomicU64>,
    ipv6_pairs: Arc<AtomicU64>,
}

/// One request's worth of pairs.
struct Batch {
    index: usize,
    start: usize,
    len: usize,
    body: Vec<u8>,
}

enum AttemptError {
    Retryable(String),
    Fatal(ScoreError),
}

impl SageMakerScorer {
    /// Builds the client from an SDK config (endpoint overrides such as
    /// `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` come with it). The SDK's own retries are switched off:
    /// this adapter retries itself, with its budget, and counts every attempt.
    pub fn new(
        conf: &aws_config::SdkConfig,
        endpoint: impl Into<String>,
        opts: SageMakerOptions,
    ) -> Self {
        use aws_sdk_sagemakerruntime::config::retry::RetryConfig;
        use aws_sdk_sagemakerruntime::config::timeout::TimeoutConfig;
        let client_conf = aws_sdk_sagemakerruntime::config::Builder::from(conf)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(opts.attempt_timeout)
                    .build(),
            )
            .build();
        Self::with_client(
            aws_sdk_sagemakerruntime::Client::from_conf(client_conf),
            endpoint,
            opts,
        )
    }

    /// Uses a prepared client. Disable its retries (`RetryConfig::disabled()`), or every retry of
    /// this adapter multiplies with the SDK's.
    pub fn with_client(
        client: aws_sdk_sagemakerruntime::Client,
        endpoint: impl Into<String>,
        opts: SageMakerOptions,
    ) -> Self {
        Self {
            client,
            endpoint: endpoint.into(),
            opts,
            calibration: None,
            baseline: None,
            ipv6: None,
            calls: Arc::new(AtomicU64::new(0)),
            retries: Arc::new(AtomicU64::new(0)),
            ipv4_pairs: Arc::new(AtomicU64::new(0)),
            ipv6_pairs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Scores IPv6 pairs with this embedded model (SageMaker's IP Insights is IPv4-only). Without
    /// one, a batch holding IPv6 pairs is rejected, saying so: they are never dropped silently.
    pub fn with_ipv6_scorer(mut self, scorer: EmbeddedScorer) -> Self {
        self.ipv6 = Some(scorer);
        self
    }

    /// The embedded model scoring IPv6 pairs, if any.
    pub fn ipv6_scorer(&self) -> Option<&EmbeddedScorer> {
        self.ipv6.as_ref()
    }

    /// Pairs sent to the endpoint (IPv4) so far (shared by clones).
    pub fn ipv4_pairs(&self) -> &AtomicU64 {
        &self.ipv4_pairs
    }

    /// Pairs scored by the embedded model beside the endpoint (IPv6) so far (shared by clones).
    pub fn ipv6_pairs(&self) -> &AtomicU64 {
        &self.ipv6_pairs
    }

    /// Combines the endpoint's dot products with a baseline sidecar (`BASELINE_URI`): the combined
    /// percentile, the history and the why, as the embedded model gives them. The sidecar should be
    /// fitted to the endpoint's model (its combiner weighs that model's dot products); its entity
    /// definition is checked against `ENTITY` at cold start ([`AnyScorer::check_entity`]).
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// The baseline combined with the endpoint's scores, if any.
    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    /// Fills [`Score::unusual_percentile`] from training-score quantiles (without it: None). Not
    /// used when a baseline is set: its held-back calibration is the honest one.
    pub fn with_calibration(mut self, calibration: Calibration) -> Self {
        self.calibration = (!calibration.is_empty()).then(|| Arc::new(calibration));
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn options(&self) -> &SageMakerOptions {
        &self.opts
    }

    /// `InvokeEndpoint` attempts made so far, retries included (shared by clones).
    pub fn calls(&self) -> &AtomicU64 {
        &self.calls
    }

    /// Of [`Self::calls`], how many were retries.
    pub fn retries(&self) -> &AtomicU64 {
        &self.retries
    }

    /// Packs pairs into CSV bodies within both limits.
    fn batches(&self, pairs: &[Pair]) -> Result<Vec<Batch>, ScoreError> {
        let max_bytes = self.opts.max_body_bytes.max(64);
        let max_pairs = self.opts.max_pairs_per_request.max(1);
        let mut out: Vec<Batch> = Vec::new();
        let mut line = Vec::with_capacity(64);
        let mut cur = Batch {
            index: 0,
            start: 0,
            len: 0,
            body: Vec::new(),
        };
        for (i, p) in pairs.iter().enumerate() {
            line.clear();
            csv_line(&mut line, p).map_err(|m| {
                ScoreError::Rejected(format!("pair {} ({:?}, {}): {m}", i + 1, p.entity, p.ip))
            })?;
            if line.len() > max_bytes {
                return Err(ScoreError::Rejected(format!(
                    "pair {} ({:?}): {} bytes, more than a whole request may carry",
                    i + 1,
                    p.entity,
                    line.len()
                )));
            }
            if cur.len == max_pairs || cur.body.len() + line.len() > max_bytes {
                let next = Batch {
                    index: cur.index + 1,
                    start: i,
                    len: 0,
                    body: Vec::new(),
                };
                out.push(std::mem::replace(&mut cur, next));
            }
            if cur.body.is_empty() {
                cur.body
                    .reserve(max_bytes.min((pairs.len() - i) * (line.len() + 8)));
            }
            cur.body.extend_from_slice(&line);
            cur.len += 1;
        }
        if cur.len > 0 {
            out.push(cur);
        }
        Ok(out)
    }

    async fn invoke_batch(&self, batch: Batch, total: usize) -> Result<Vec<f32>, ScoreError> {
        let name = |b: &Batch| {
            format!(
                "endpoint {}, batch {} of {total} (pairs {}–{})",
                self.endpoint,
                b.index + 1,
                b.start + 1,
                b.start + b.len
            )
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let err = match self.attempt(&batch).await {
                Ok(body) => {
                    let scores = parse_dot_products(&body).map_err(|m| {
                        ScoreError::Rejected(format!("{}: unreadable response: {m}", name(&batch)))
                    })?;
                    if scores.len() != batch.len {
                        return Err(ScoreError::Rejected(format!(
                            "{}: {} predictions for {} pairs",
                            name(&batch),
                            scores.len(),
                            batch.len
                        )));
                    }
                    return Ok(scores);
                }
                Err(AttemptError::Fatal(ScoreError::Rejected(m))) => {
                    return Err(ScoreError::Rejected(format!(
                        "{}: {}",
                        name(&batch),
                        locate_record(&m, &batch)
                    )))
                }
                Err(AttemptError::Fatal(ScoreError::Unavailable(m))) => {
                    return Err(ScoreError::Unavailable(format!("{}: {m}", name(&batch))))
                }
                Err(AttemptError::Retryable(m)) => m,
            };
            let ceiling = self
                .opts
                .base_backoff
                .saturating_mul(1u32 << attempt.min(20))
                .min(self.opts.max_backoff);
            let sleep = ceiling.mul_f64(jitter());
            if attempt >= self.opts.max_attempts
                || started.elapsed() + sleep > self.opts.max_retry_time
            {
                return Err(ScoreError::Unavailable(format!(
                    "{}: gave up after {attempt} attempts in {:.1} s: {err}",
                    name(&batch),
                    started.elapsed().as_secs_f64()
                )));
            }
            tokio::time::sleep(sleep).await;
        }
    }

    async fn attempt(&self, batch: &Batch) -> Result<Vec<u8>, AttemptError> {
        let send = self
            .client
            .invoke_endpoint()
            .endpoint_name(&self.endpoint)
            .content_type("text/csv")
            .accept("application/json")
            .body(Blob::new(batch.body.clone()))
            .send();
        // The SDK enforces the attempt timeout too; this guards a client built without one.
        let res = tokio::time::timeout(self.opts.attempt_timeout, send)
            .await
            .map_err(|_| {
                AttemptError::Retryable(format!(
                    "no answer within {:.0} s",
                    self.opts.attempt_timeout.as_secs_f64()
                ))
            })?;
        match res {
            Ok(out) => Ok(out.body.map(Blob::into_inner).unwrap_or_default()),
            Err(e) => Err(classify(e)),
        }
    }
}

/// Decides what a failed `InvokeEndpoint` means: retry (throttling, 429, 503, timeouts, dropped
/// connections), reject (the request or the model refuses it: 4xx), or give up for now (other 5xx).
fn classify(e: SdkError<InvokeEndpointError>) -> AttemptError {
    use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, ProvideErrorMetadata};
    match e {
        SdkError::TimeoutError(_) => AttemptError::Retryable("attempt timed out".into()),
        SdkError::DispatchFailure(d) => AttemptError::Retryable(format!(
            "request not delivered: {}",
            DisplayErrorContext(&SdkError::<InvokeEndpointError>::DispatchFailure(d))
        )),
        SdkError::ResponseError(r) => AttemptError::Retryable(format!(
            "unreadable response: {}",
            DisplayErrorContext(&SdkError::<InvokeEndpointError>::ResponseError(r))
        )),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let err = se.into_err();
            let code = err.code().unwrap_or("").to_string();
            let message = err.message().unwrap_or("").to_string();
            match err {
                InvokeEndpointError::ModelError(m) => {
                    let orig = m.original_status_code().unwrap_or(0);
                    let text = m
                        .original_message()
                        .or(m.message())
                        .unwrap_or("no message")
                        .to_string();
                    let msg = format!("model error ({orig}): {text}");
                    match orig {
                        429 | 503 => AttemptError::Retryable(msg),
                        400..=499 => AttemptError::Fatal(ScoreError::Rejected(msg)),
                        _ => AttemptError::Fatal(ScoreError::Unavailable(msg)),
                    }
                }
                InvokeEndpointError::ValidationError(_) => AttemptError::Fatal(
                    ScoreError::Rejected(format!("ValidationError ({status}): {message}")),
                ),
                InvokeEndpointError::ServiceUnavailable(_)
                | InvokeEndpointError::ModelNotReadyException(_)
                | InvokeEndpointError::InternalDependencyException(_)
                | InvokeEndpointError::InternalFailure(_) => {
                    AttemptError::Retryable(format!("{code} ({status}): {message}"))
                }
                _ => {
                    let throttled = code.contains("Throttl") || code == "TooManyRequestsException";
                    let msg = match (code.is_empty(), message.is_empty()) {
                        (true, true) => format!("HTTP {status}"),
                        (false, true) => format!("HTTP {status} {code}"),
                        (true, false) => format!("HTTP {status}: {message}"),
                        (false, false) => format!("HTTP {status} {code}: {message}"),
                    };
                    match status {
                        429 | 502..=504 => AttemptError::Retryable(msg),
                        _ if throttled => AttemptError::Retryable(msg),
                        400..=499 => AttemptError::Fatal(ScoreError::Rejected(msg)),
                        _ => AttemptError::Retryable(msg),
                    }
                }
            }
        }
        other => AttemptError::Fatal(ScoreError::Rejected(format!(
            "request not built: {}",
            DisplayErrorContext(&other)
        ))),
    }
}

/// Writes `entity,ip\n`, quoting the entity when the server's CSV reader would otherwise split or
/// trim it (see `ipsight_model::wire::split_csv_pair`).
fn csv_line(out: &mut Vec<u8>, p: &Pair) -> Result<(), &'static str> {
    use std::io::Write as _;
    let e = &p.entity;
    if e.contains(['\n', '\r']) {
        return Err("an entity with a line break cannot be sent as text/csv");
    }
    let needs_quotes =
        e.contains(',') || e.starts_with('"') || e.trim() != e.as_str() || e.is_empty();
    if needs_quotes {
        out.push(b'"');
        out.extend_from_slice(e.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(e.as_bytes());
    }
    let _ = writeln!(out, ",{}", p.ip);
    Ok(())
}

/// Points a "record N: …" wire error at the pair it names.
fn locate_record(message: &str, batch: &Batch) -> String {
    let n = message
        .find("record ")
        .map(|i| &message[i + 7..])
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse::<usize>().ok());
    match n {
        Some(n) if (1..=batch.len).contains(&n) => {
            format!("{message} (pair {} of the input)", batch.start + n)
        }
        _ => message.to_string(),
    }
}

/// Reads the `dot_product`s of an `application/json` response in order. Numbers are parsed with
/// Rust's correctly rounded `f32` parser, so a score survives the trip bit for bit (a JSON library
/// reading through `f64` can be one ulp off); `null` (a non-finite score) reads as NaN.
pub fn parse_dot_products(body: &[u8]) -> Result<Vec<f32>, String> {
    const KEY: &[u8] = b"\"dot_product\"";
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    if !text.trim_start().starts_with('{') || !text.contains("\"predictions\"") {
        return Err(format!(
            "expected {{\"predictions\":[...]}}, got {:?}",
            &text[..text.len().min(120)]
        ));
    }
    let mut out = Vec::new();
    let mut rest = text;
    let finder = memchr::memmem::Finder::new(KEY);
    while let Some(i) = finder.find(rest.as_bytes()) {
        let after = rest[i + KEY.len()..].trim_start();
        let after = after
            .strip_prefix(':')
            .ok_or("expected ':' after \"dot_product\"")?
            .trim_start();
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.')))
            .unwrap_or(after.len());
        let num = &after[..end];
        out.push(if num == "null" {
            f32::NAN
        } else {
            num.parse::<f32>()
                .map_err(|_| format!("dot_product {num:?} is not a number"))?
        });
        rest = &after[end..];
    }
    Ok(out)
}

/// A uniform draw in [0, 1) for back-off jitter: splitmix64 over a shared counter seeded from the
/// clock. Statistical quality is irrelevant here; what matters is that concurrent callers differ.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    s = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Scorer for SageMakerScorer {
    fn profile(&self, entity: &str) -> Option<ipsight_ports::PrincipalProfile> {
        self.baseline.as_ref()?.profile(entity)
    }

    /// IPv4 pairs go to the endpoint, IPv6 pairs to the embedded model beside it
    /// ([`SageMakerScorer::with_ipv6_scorer`]); the scores come back in input order.
    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.iter().all(|p| p.ip.is_ipv4()) {
            self.ipv4_pairs
                .fetch_add(pairs.len() as u64, Ordering::Relaxed);
            return self.score_endpoint(pairs).await;
        }
        type Indexed<'a> = Vec<(usize, &'a Pair)>;
        let (v4, v6): (Indexed, Indexed) =
            pairs.iter().enumerate().partition(|(_, p)| p.ip.is_ipv4());
        let Some(embedded) = &self.ipv6 else {
            return Err(ScoreError::Rejected(format!(
                "{} IPv6 pair(s) (first: {:?}, {}): the SageMaker IP Insights endpoint {} is \
                 IPv4-only and no embedded model is configured beside it to score them (set \
                 MODEL_URI with SAGEMAKER_ENDPOINT)",
                v6.len(),
                v6[0].1.entity,
                v6[0].1.ip,
                self.endpoint
            )));
        };
        let v4_pairs: Vec<Pair> = v4.iter().map(|(_, p)| (*p).clone()).collect();
        let v6_pairs: Vec<Pair> = v6.iter().map(|(_, p)| (*p).clone()).collect();
        let v4_scores = self.score_endpoint(&v4_pairs).await?;
        let v6_scores = embedded.score(&v6_pairs).await?;
        self.ipv4_pairs
            .fetch_add(v4_pairs.len() as u64, Ordering::Relaxed);
        self.ipv6_pairs
            .fetch_add(v6_pairs.len() as u64, Ordering::Relaxed);
        let mut out: Vec<Option<Score>> = vec![None; pairs.len()];
        for ((i, _), s) in v4.iter().zip(v4_scores).chain(v6.iter().zip(v6_scores)) {
            out[*i] = Some(s);
        }
        Ok(out
            .into_iter()
            .map(|s| s.expect("every pair is IPv4 or IPv6"))
            .collect())
    }
}

impl SageMakerScorer {
    /// IPv4 pairs through `InvokeEndpoint`.
    async fn score_endpoint(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let batches = self.batches(pairs)?;
        let total = batches.len();
        let mut results = futures::stream::iter(batches)
            .map(|b| self.invoke_batch(b, total))
            .buffered(self.opts.concurrency.max(1));
        let mut dots = Vec::with_capacity(pairs.len());
        while let Some(r) = results.next().await {
            // The first failure ends the call; dropping the stream cancels requests in flight.
            dots.extend(r?);
        }
        if let Some(b) = &self.baseline {
            let b = b.clone();
            // The detector is CPU work (microseconds a pair): off the async workers for big batches.
            return Ok(if pairs.len() < 4096 {
                b.judge_all(pairs, &dots)
            } else {
                let pairs = pairs.to_vec();
                tokio::task::spawn_blocking(move || b.judge_all(&pairs, &dots))
                    .await
                    .map_err(|e| ScoreError::Unavailable(format!("baseline thread failed: {e}")))?
            });
        }
        Ok(dots
            .into_iter()
            .map(|s| {
                Score::embedding_only(
                    s,
                    self.calibration
                        .as_deref()
                        .and_then(|c| unusual_percentile(c, s)),
                    "no baseline sidecar (BASELINE_URI) beside the SageMaker endpoint",
                )
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing a scorer at cold start
// ---------------------------------------------------------------------------------------------

/// Either adapter, chosen by configuration; handlers stay generic over [`Scorer`].
// One per process, built at cold start: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AnyScorer {
    Embedded(EmbeddedScorer),
    /// The embedded model from S3, re-read when the object changes (see [`ipsight_ports::reload`]).
    Reloading(Arc<ReloadingScorer<S3Store>>),
    SageMaker(SageMakerScorer),
}

impl Scorer for AnyScorer {
    fn profile(&self, entity: &str) -> Option<ipsight_ports::PrincipalProfile> {
        match self {
            Self::Embedded(s) => s.profile(entity),
            Self::Reloading(s) => s.profile(entity),
            Self::SageMaker(s) => s.profile(entity),
        }
    }

    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        match self {
            Self::Embedded(s) => s.score(pairs).await,
            Self::Reloading(s) => s.score(pairs).await,
            Self::SageMaker(s) => s.score(pairs).await,
        }
    }
}

impl AnyScorer {
    /// The entity definition the model records; `None` for an endpoint (it records none).
    pub fn entity_definition(&self) -> Option<String> {
        match self {
            Self::Embedded(s) => Some(s.model().entity_definition().to_owned()),
            Self::Reloading(s) => Some(s.scorer().model().entity_definition().to_owned()),
            Self::SageMaker(s) => s.baseline().map(|b| b.entity_definition().to_owned()),
        }
    }

    /// Refuse, at cold start, to score with a model (or a baseline beside an endpoint) built on
    /// another entity definition: its entities would all be strangers and every pair would look
    /// unusual. An endpoint records no definition and is trusted.
    pub fn check_entity(&self, entity: ipsight_formats::EntityKind) -> Result<(), ScorerInitError> {
        match self.entity_definition() {
            Some(def) if def != entity.as_str() => Err(ScorerInitError::Config(format!(
                "the model ({}) was trained on entity {def:?} but ENTITY={entity}: set \
                 ENTITY={def}, or retrain with ENTITY={entity} after re-preparing the training tuples",
                self.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// A short description for logs ("embedded model" / "SageMaker endpoint NAME").
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(s) => s.describe(),
            Self::Reloading(s) => format!(
                "{} at {} (version {}, checked for a new one every {} s)",
                s.scorer().describe(),
                s.location(),
                s.version_tag(),
                s.check_every().as_secs()
            ),
            Self::SageMaker(s) => format!(
                "SageMaker endpoint {} ({}; {})",
                s.endpoint(),
                match s.baseline() {
                    Some(b) => format!(
                        "baseline {}, new principals: {}",
                        b.location(),
                        new_principals_name(b.new_principals())
                    ),
                    None => "no baseline: the embedding alone".into(),
                },
                if s.ipv6_scorer().is_some() {
                    "IPv6 pairs: the embedded model beside it"
                } else {
                    "IPv4 only: no embedded model for IPv6 pairs"
                }
            ),
        }
    }
}

/// Reads a calibration: an ipsight model file (its stored quantiles) or a JSON document
/// `{"quantiles":[...1001 non-decreasing scores...],"pairs":N}` (the model header's
/// `calibration` object; for a SageMaker-trained model, the quantiles of the training pairs'
/// dot products). Which one is decided by the model file's magic bytes.
pub fn calibration_from_bytes(
    bytes: &[u8],
    location: &str,
) -> Result<Calibration, ScorerInitError> {
    let err = |message: String| ScorerInitError::Calibration {
        location: location.to_string(),
        message,
    };
    let cal = if bytes.starts_with(ipsight_model::model::MAGIC) {
        Model::read_from(&mut &bytes[..])
            .map_err(|e| err(e.to_string()))?
            .calibration()
            .clone()
    } else {
        serde_json::from_slice::<Calibration>(bytes).map_err(|e| {
            err(format!(
                "neither an ipsight model file nor calibration JSON {{\"quantiles\":[...],\"pairs\":N}}: {e}"
            ))
        })?
    };
    if cal.is_empty() {
        return Err(err("no quantiles".into()));
    }
    if cal
        .quantiles
        .windows(2)
        .any(|w| w[0].partial_cmp(&w[1]).is_none_or(|o| o.is_gt()))
    {
        return Err(err("quantiles must be non-decreasing numbers".into()));
    }
    Ok(cal)
}

async fn read_location(
    conf: &aws_config::SdkConfig,
    loc: &ModelLocation,
) -> Result<Vec<u8>, ScorerInitError> {
    match loc {
        ModelLocation::Local(p) => {
            tokio::fs::read(p)
                .await
                .map_err(|e| ScorerInitError::Calibration {
                    location: p.display().to_string(),
                    message: e.to_string(),
                })
        }
        ModelLocation::S3(obj) => {
            use tokio::io::AsyncReadExt as _;
            let store = S3Store::from_conf(conf);
            let mut body = store.get(obj).await?;
            let mut buf = Vec::new();
            body.reader
                .read_to_end(&mut buf)
                .await
                .map_err(|e| ScorerInitError::Calibration {
                    location: obj.to_string(),
                    message: e.to_string(),
                })?;
            Ok(buf)
        }
    }
}

/// Environment variables read by [`scorer_from_env`].
pub mod env {
    /// Name of a SageMaker endpoint: when set, scoring goes to it.
    pub const SAGEMAKER_ENDPOINT: &str = "SAGEMAKER_ENDPOINT";
    /// Embedded model location when no endpoint is set: `s3://bucket/key` or a local path
    /// (default [`super::DEFAULT_MODEL_PATH`]). With an endpoint: the model that scores the IPv6
    /// pairs the IPv4-only endpoint cannot (without it, batches with IPv6 pairs are rejected).
    pub const MODEL_URI: &str = "MODEL_URI";
    /// Optional, with an endpoint: calibration (model file or quantiles JSON) for percentiles.
    pub const CALIBRATION_URI: &str = "CALIBRATION_URI";
    /// Optional, with an endpoint: the baseline sidecar (`s3://bucket/key` or a path) combined with
    /// the endpoint's dot products. The embedded model reads its sidecar from beside `MODEL_URI`.
    pub const BASELINE_URI: &str = "BASELINE_URI";
    /// `alert` (default) or `ignore`: whether a principal absent from the baseline alerts.
    pub const NEW_PRINCIPALS: &str = "NEW_PRINCIPALS";
    /// Optional [`super::SageMakerOptions`] overrides.
    pub const SAGEMAKER_CONCURRENCY: &str = "SAGEMAKER_CONCURRENCY";
    pub const SAGEMAKER_MAX_PAIRS_PER_REQUEST: &str = "SAGEMAKER_MAX_PAIRS_PER_REQUEST";
    pub const SAGEMAKER_MAX_ATTEMPTS: &str = "SAGEMAKER_MAX_ATTEMPTS";
    pub const SAGEMAKER_RETRY_SECONDS: &str = "SAGEMAKER_RETRY_SECONDS";
    /// With an `s3://` `MODEL_URI`: seconds between checks for a promoted model (default
    /// [`DEFAULT_CHECK_SECONDS`]; 0 = load once, never check).
    pub const MODEL_CHECK_SECONDS: &str = "MODEL_CHECK_SECONDS";
}

/// The scorer a function is configured with, read with the rest of its configuration (bad values
/// fail at cold start, naming the variable) and built once by [`ScorerSettings::build`].
// Read once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ScorerSettings {
    /// `SAGEMAKER_ENDPOINT` (with `CALIBRATION_URI` and the `SAGEMAKER_*` tuning, optional).
    /// `MODEL_URI` beside it: the embedded model that scores the IPv6 pairs the IPv4-only endpoint
    /// cannot (without it, batches with IPv6 pairs are rejected, saying so).
    /// `BASELINE_URI`: the sidecar combined with the endpoint's dot products.
    SageMaker {
        endpoint: String,
        options: SageMakerOptions,
        calibration: Option<ModelLocation>,
        ipv6_model: Option<ModelLocation>,
        baseline: Option<ModelLocation>,
        new_principals: NewPrincipals,
    },
    /// The embedded model at `MODEL_URI` (default [`DEFAULT_MODEL_PATH`]) and the sidecar beside it
    /// (absent: the embedding alone, said on every score); an `s3://` model is checked for a
    /// promoted version every `MODEL_CHECK_SECONDS` (0: loaded once).
    Embedded {
        model: ModelLocation,
        check_seconds: u64,
        new_principals: NewPrincipals,
    },
}

impl ScorerSettings {
    /// Whether a scorer is configured at all (`SAGEMAKER_ENDPOINT` or `MODEL_URI` set): fuse
    /// scores pairs on the fly only then.
    pub fn configured<G: Fn(&str) -> Option<String>>(e: &Env<G>) -> bool {
        e.get(env::SAGEMAKER_ENDPOINT).is_some() || e.get(env::MODEL_URI).is_some()
    }

    /// Whether a principal absent from the baseline alerts (`NEW_PRINCIPALS`).
    pub fn new_principals(&self) -> NewPrincipals {
        match self {
            Self::SageMaker { new_principals, .. } | Self::Embedded { new_principals, .. } => {
                *new_principals
            }
        }
    }

    pub fn from_env<G: Fn(&str) -> Option<String>>(e: &Env<G>) -> Result<Self, ConfigError> {
        let location = |name: &'static str, v: String| {
            ModelLocation::parse(&v).map_err(|err| ConfigError::invalid(name, v, err.to_string()))
        };
        let new_principals = e.new_principals()?;
        let baseline = e
            .get(env::BASELINE_URI)
            .map(|v| location(env::BASELINE_URI, v))
            .transpose()?;
        if let Some(endpoint) = e.get(env::SAGEMAKER_ENDPOINT) {
            let defaults = SageMakerOptions::default();
            let retry_seconds: Option<f64> = e.number_opt(env::SAGEMAKER_RETRY_SECONDS)?;
            let options = SageMakerOptions {
                concurrency: e
                    .number(env::SAGEMAKER_CONCURRENCY, defaults.concurrency)?
                    .max(1),
                max_pairs_per_request: e
                    .number(
                        env::SAGEMAKER_MAX_PAIRS_PER_REQUEST,
                        defaults.max_pairs_per_request,
                    )?
                    .max(1),
                max_attempts: e
                    .number(env::SAGEMAKER_MAX_ATTEMPTS, defaults.max_attempts)?
                    .max(1),
                max_retry_time: match retry_seconds {
                    None => defaults.max_retry_time,
                    Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
                        ConfigError::invalid(
                            env::SAGEMAKER_RETRY_SECONDS,
                            s.to_string(),
                            "not a duration",
                        )
                    })?,
                },
                ..defaults
            };
            let calibration = e
                .get(env::CALIBRATION_URI)
                .map(|v| location(env::CALIBRATION_URI, v))
                .transpose()?;
            let ipv6_model = e
                .get(env::MODEL_URI)
                .map(|v| location(env::MODEL_URI, v))
                .transpose()?;
            return Ok(Self::SageMaker {
                endpoint,
                options,
                calibration,
                ipv6_model,
                baseline,
                new_principals,
            });
        }
        if baseline.is_some() {
            return Err(ConfigError::invalid(
                env::BASELINE_URI,
                e.or(env::BASELINE_URI, ""),
                "is for a SAGEMAKER_ENDPOINT; the embedded model reads its sidecar from beside \
                 MODEL_URI (same key, extension .ipsb)",
            ));
        }
        Ok(Self::Embedded {
            model: location(env::MODEL_URI, e.or(env::MODEL_URI, DEFAULT_MODEL_PATH))?,
            check_seconds: e.number(env::MODEL_CHECK_SECONDS, DEFAULT_CHECK_SECONDS)?,
            new_principals,
        })
    }

    /// Build the scorer: connect to the endpoint, or load the model (once, at cold start).
    pub async fn build(&self, conf: &aws_config::SdkConfig) -> Result<AnyScorer, ScorerInitError> {
        match self {
            Self::SageMaker {
                endpoint,
                options,
                calibration,
                ipv6_model,
                baseline,
                new_principals,
            } => {
                let mut scorer = SageMakerScorer::new(conf, endpoint.clone(), options.clone());
                if let Some(loc) = calibration {
                    let bytes = read_location(conf, loc).await?;
                    let uri = match loc {
                        ModelLocation::S3(o) => o.to_string(),
                        ModelLocation::Local(p) => p.display().to_string(),
                    };
                    scorer = scorer.with_calibration(calibration_from_bytes(&bytes, &uri)?);
                }
                if let Some(loc) = ipv6_model {
                    scorer =
                        scorer.with_ipv6_scorer(load_embedded(conf, loc, *new_principals).await?);
                }
                if let Some(loc) = baseline {
                    let (det, at) = match loc {
                        ModelLocation::Local(p) => {
                            let p = p.clone();
                            let det = tokio::task::spawn_blocking({
                                let p = p.clone();
                                move || baseline::load_file(&p)
                            })
                            .await
                            .map_err(|e| {
                                ScorerInitError::Config(format!(
                                    "baseline loader thread failed: {e}"
                                ))
                            })??;
                            (det, p.display().to_string())
                        }
                        ModelLocation::S3(obj) => {
                            let store = S3Store::from_conf(conf);
                            (baseline::load_object(&store, obj).await?, obj.to_string())
                        }
                    };
                    scorer =
                        scorer.with_baseline(Baseline::new(Arc::new(det), *new_principals, at));
                }
                Ok(AnyScorer::SageMaker(scorer))
            }
            Self::Embedded {
                model: ModelLocation::S3(obj),
                check_seconds,
                new_principals,
            } if *check_seconds > 0 => {
                let store = S3Store::from_conf(conf);
                let every = Duration::from_secs(*check_seconds);
                let r =
                    ReloadingScorer::load_with(store, obj.clone(), every, *new_principals).await?;
                Ok(AnyScorer::Reloading(Arc::new(r)))
            }
            Self::Embedded {
                model,
                new_principals,
                ..
            } => Ok(AnyScorer::Embedded(
                load_embedded(conf, model, *new_principals).await?,
            )),
        }
    }
}

/// The embedded model at `loc` and the sidecar beside it, loaded once.
async fn load_embedded(
    conf: &aws_config::SdkConfig,
    loc: &ModelLocation,
    new_principals: NewPrincipals,
) -> Result<EmbeddedScorer, ScorerInitError> {
    match loc {
        ModelLocation::Local(p) => {
            let p = p.clone();
            // Model::load reads a file synchronously; at cold start nothing else is waiting.
            tokio::task::spawn_blocking(move || EmbeddedScorer::load_with(p, new_principals))
                .await
                .map_err(|e| ScorerInitError::Config(format!("model loader thread failed: {e}")))?
        }
        ModelLocation::S3(obj) => {
            let store = S3Store::from_conf(conf);
            EmbeddedScorer::from_store_with(&store, obj, new_principals).await
        }
    }
}

/// [`scorer_from_vars`] with the process environment.
pub async fn scorer_from_env(conf: &aws_config::SdkConfig) -> Result<AnyScorer, ScorerInitError> {
    scorer_from_vars(conf, |k| std::env::var(k).ok()).await
}

/// [`ScorerSettings`] read from `var` and built, a configuration error reported as
/// [`ScorerInitError::Config`] (for tools that need a scorer and nothing else).
pub async fn scorer_from_vars(
    conf: &aws_config::SdkConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<AnyScorer, ScorerInitError> {
    let settings = ScorerSettings::from_env(&Env::new(var))
        .map_err(|e| ScorerInitError::Config(e.to_string()))?;
    settings.build(conf).await
}
