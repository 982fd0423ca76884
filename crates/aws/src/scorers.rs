//! Scorer adapters: the embedded model ([`EmbeddedScorer`]), a SageMaker IP Insights endpoint
//! ([`SageMakerScorer`], which also talks to `ipsight serve`), and [`scorer_from_env`] which picks
//! one for a Lambda at cold start ([`AnyScorer`]).
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipsight_model::{Calibration, Model, ModelError};

use crate::reload::ReloadingScorer;
use crate::scorer::{Pair, Score, ScoreError, Scorer};
use crate::store::{ObjectBody, ObjectRef, ObjectStore, StoreError};

/// Why a scorer could not be built (cold-start configuration errors: fail fast).
#[derive(Debug, thiserror::Error)]
pub enum ScorerInitError {
    #[error("loading model {location}: {source}")]
    Model {
        location: String,
        #[source]
        source: ModelError,
    },
    #[error("loading model: {0}")]
    Store(#[from] StoreError),
    #[error("loading calibration {location}: {message}")]
    Calibration { location: String, message: String },
    #[error("scorer configuration: {0}")]
    Config(String),
}

/// Below this many pairs the embedded model scores inline: a few thousand look-ups take well under a
/// millisecond, less than handing the work to another thread would cost.
const INLINE_PAIRS: usize = 4096;

/// The embedded IP Insights-compatible model, loaded once per container.
#[derive(Debug, Clone)]
pub struct EmbeddedScorer {
    model: Arc<Model>,
}

impl EmbeddedScorer {
    pub fn new(model: Arc<Model>) -> Self {
        Self { model }
    }

    /// Loads a model file from a local path (e.g. one bundled in the Lambda package or a layer).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScorerInitError> {
        let path = path.as_ref();
        let model = Model::load(path).map_err(|source| ScorerInitError::Model {
            location: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(Arc::new(model)))
    }

    /// Loads a model file from an object store at cold start. The body is streamed straight into the
    /// model's tables on a blocking thread, so a 100 MB model is never held twice in memory.
    pub async fn from_store(
        store: &impl ObjectStore,
        obj: &ObjectRef,
    ) -> Result<Self, ScorerInitError> {
        Self::from_body(store.get(obj).await?, obj).await
    }

    /// Loads a model from a body already fetched (its version tag read by the caller).
    pub async fn from_body(body: ObjectBody, obj: &ObjectRef) -> Result<Self, ScorerInitError> {
        let location = obj.to_string();
        let model = tokio::task::spawn_blocking(move || {
            let mut r = std::io::BufReader::with_capacity(
                1 << 16,
                tokio_util::io::SyncIoBridge::new(body.reader),
            );
            Model::read_from(&mut r)
        })
        .await
        .map_err(|e| ScorerInitError::Config(format!("model loader thread failed: {e}")))?
        .map_err(|source| ScorerInitError::Model { location, source })?;
        Ok(Self::new(Arc::new(model)))
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Scores synchronously (CPU-bound; uses the rayon pool for large batches).
    pub fn score_blocking(&self, pairs: &[Pair]) -> Vec<Score> {
        let refs: Vec<(&str, Ipv4Addr)> = pairs.iter().map(|p| (p.entity.as_str(), p.ip)).collect();
        let cal = self.model.calibration();
        self.model
            .score_pairs(&refs)
            .into_iter()
            .map(|s| Score {
                dot_product: s,
                unusual_percentile: unusual_percentile(cal, s),
            })
            .collect()
    }
}

/// The share of known-normal activity (in percent) that scored higher than `score`: the
/// [`Score::unusual_percentile`] convention. None without a calibration.
pub fn unusual_percentile(cal: &Calibration, score: f32) -> Option<f64> {
    let p = cal.percentile(score);
    (!p.is_nan()).then_some(100.0 - p)
}

impl Scorer for EmbeddedScorer {
    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.len() < INLINE_PAIRS {
            return Ok(self.score_blocking(pairs));
        }
        // Large batches are CPU-bound for milliseconds to seconds: keep the async workers free.
        // `block_in_place` rather than `spawn_blocking` because the pairs are borrowed (no copy of
        // the batch); on a current-thread runtime (unit tests) there is no other worker to free, so
        // the work runs inline there.
        use tokio::runtime::{Handle, RuntimeFlavor};
        let multi_thread = Handle::try_current()
            .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
            .unwrap_or(false);
        if multi_thread {
            Ok(tokio::task::block_in_place(|| self.score_blocking(pairs)))
        } else {
            Ok(self.score_blocking(pairs))
        }
    }
}

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
    calls: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
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
            calls: Arc::new(AtomicU64::new(0)),
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Fills [`Score::unusual_percentile`] from training-score quantiles (without it: None).
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
    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let batches = self.batches(pairs)?;
        let total = batches.len();
        let mut results = futures::stream::iter(batches)
            .map(|b| self.invoke_batch(b, total))
            .buffered(self.opts.concurrency.max(1));
        let mut out = Vec::with_capacity(pairs.len());
        while let Some(r) = results.next().await {
            // The first failure ends the call; dropping the stream cancels requests in flight.
            for s in r? {
                out.push(Score {
                    dot_product: s,
                    unusual_percentile: self
                        .calibration
                        .as_deref()
                        .and_then(|c| unusual_percentile(c, s)),
                });
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing a scorer at cold start
// ---------------------------------------------------------------------------------------------

/// Either adapter, chosen by configuration; handlers stay generic over [`Scorer`].
#[derive(Debug, Clone)]
pub enum AnyScorer {
    Embedded(EmbeddedScorer),
    /// The embedded model from S3, re-read when the object changes (see [`crate::reload`]).
    Reloading(Arc<ReloadingScorer<crate::store::S3Store>>),
    SageMaker(SageMakerScorer),
}

impl Scorer for AnyScorer {
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
            Self::SageMaker(_) => None,
        }
    }

    /// Refuse, at cold start, to score with a model trained on another entity definition: its
    /// entities would all be strangers and every pair would look unusual. An endpoint records no
    /// definition and is trusted.
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
            Self::Embedded(_) => "embedded model".into(),
            Self::Reloading(s) => format!(
                "embedded model {} (version {}, checked for a new one every {} s)",
                s.location(),
                s.version_tag(),
                s.check_every().as_secs()
            ),
            Self::SageMaker(s) => format!("SageMaker endpoint {}", s.endpoint()),
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
            let store = crate::store::S3Store::from_conf(conf);
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
    /// (default [`super::DEFAULT_MODEL_PATH`]).
    pub const MODEL_URI: &str = "MODEL_URI";
    /// Optional, with an endpoint: calibration (model file or quantiles JSON) for percentiles.
    pub const CALIBRATION_URI: &str = "CALIBRATION_URI";
    /// Optional [`super::SageMakerOptions`] overrides.
    pub const SAGEMAKER_CONCURRENCY: &str = "SAGEMAKER_CONCURRENCY";
    pub const SAGEMAKER_MAX_PAIRS_PER_REQUEST: &str = "SAGEMAKER_MAX_PAIRS_PER_REQUEST";
    pub const SAGEMAKER_MAX_ATTEMPTS: &str = "SAGEMAKER_MAX_ATTEMPTS";
    pub const SAGEMAKER_RETRY_SECONDS: &str = "SAGEMAKER_RETRY_SECONDS";
    /// With an `s3://` `MODEL_URI`: seconds between checks for a promoted model (default
    /// [`crate::reload::DEFAULT_CHECK_SECONDS`]; 0 = load once, never check).
    pub const MODEL_CHECK_SECONDS: &str = "MODEL_CHECK_SECONDS";
}

/// [`scorer_from_vars`] with the process environment: the Lambdas' cold-start call.
pub async fn scorer_from_env(conf: &aws_config::SdkConfig) -> Result<AnyScorer, ScorerInitError> {
    scorer_from_vars(conf, |k| std::env::var(k).ok()).await
}

/// Builds the configured scorer: `SAGEMAKER_ENDPOINT` set → [`SageMakerScorer`] (with
/// `CALIBRATION_URI` if given); otherwise the embedded model from `MODEL_URI` (S3 or a local path,
/// default [`DEFAULT_MODEL_PATH`]). Bad values fail here, at cold start, not on the first event.
pub async fn scorer_from_vars(
    conf: &aws_config::SdkConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<AnyScorer, ScorerInitError> {
    let var = |k: &str| {
        var(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    fn num<T: std::str::FromStr>(
        name: &str,
        v: Option<String>,
    ) -> Result<Option<T>, ScorerInitError> {
        v.map(|s| {
            s.parse::<T>()
                .map_err(|_| ScorerInitError::Config(format!("{name}={s:?} is not a valid number")))
        })
        .transpose()
    }
    if let Some(endpoint) = var(env::SAGEMAKER_ENDPOINT) {
        let mut opts = SageMakerOptions::default();
        if let Some(n) = num::<usize>(env::SAGEMAKER_CONCURRENCY, var(env::SAGEMAKER_CONCURRENCY))?
        {
            opts.concurrency = n.max(1);
        }
        if let Some(n) = num::<usize>(
            env::SAGEMAKER_MAX_PAIRS_PER_REQUEST,
            var(env::SAGEMAKER_MAX_PAIRS_PER_REQUEST),
        )? {
            opts.max_pairs_per_request = n.max(1);
        }
        if let Some(n) = num::<u32>(
            env::SAGEMAKER_MAX_ATTEMPTS,
            var(env::SAGEMAKER_MAX_ATTEMPTS),
        )? {
            opts.max_attempts = n.max(1);
        }
        if let Some(s) = num::<f64>(
            env::SAGEMAKER_RETRY_SECONDS,
            var(env::SAGEMAKER_RETRY_SECONDS),
        )? {
            opts.max_retry_time = Duration::try_from_secs_f64(s).map_err(|_| {
                ScorerInitError::Config(format!(
                    "{}={s} is not a duration",
                    env::SAGEMAKER_RETRY_SECONDS
                ))
            })?;
        }
        let mut scorer = SageMakerScorer::new(conf, endpoint, opts);
        if let Some(uri) = var(env::CALIBRATION_URI) {
            let loc = ModelLocation::parse(&uri)?;
            let bytes = read_location(conf, &loc).await?;
            scorer = scorer.with_calibration(calibration_from_bytes(&bytes, &uri)?);
        }
        return Ok(AnyScorer::SageMaker(scorer));
    }
    let uri = var(env::MODEL_URI).unwrap_or_else(|| DEFAULT_MODEL_PATH.to_string());
    let scorer = match ModelLocation::parse(&uri)? {
        ModelLocation::Local(p) => {
            // Model::load reads a file synchronously; at cold start nothing else is waiting.
            tokio::task::spawn_blocking(move || EmbeddedScorer::load(p))
                .await
                .map_err(|e| {
                    ScorerInitError::Config(format!("model loader thread failed: {e}"))
                })??
        }
        ModelLocation::S3(obj) => {
            let every = num::<u64>(env::MODEL_CHECK_SECONDS, var(env::MODEL_CHECK_SECONDS))?
                .unwrap_or(crate::reload::DEFAULT_CHECK_SECONDS);
            let store = crate::store::S3Store::from_conf(conf);
            if every == 0 {
                EmbeddedScorer::from_store(&store, &obj).await?
            } else {
                let r = ReloadingScorer::load(store, obj, Duration::from_secs(every)).await?;
                return Ok(AnyScorer::Reloading(Arc::new(r)));
            }
        }
    };
    Ok(AnyScorer::Embedded(scorer))
}
