//! `ipsight serve`: an HTTP server around an embedded IP Insights-compatible model that speaks
//! SageMaker's protocols, so anything written against a SageMaker IP Insights endpoint (the AWS SDK's
//! `InvokeEndpoint`, the SageMaker container contract) works against it unchanged.
//!
//! - Container contract: `GET /ping` → 200 when the model is loaded; `POST /invocations` with the
//!   IP Insights request formats; errors are plain HTTP statuses (400 bad record, 413 too large,
//!   415 unsupported Content-Type, 406 unsupported Accept) with a text message.
//! - SageMaker Runtime: `POST /endpoints/{name}/invocations` answers as the Runtime service does: the
//!   container's response on success, and on a model error HTTP 424 with `x-amzn-ErrorType: ModelError`
//!   and `OriginalStatusCode`/`OriginalMessage`, so the SDK returns `InvokeEndpointError::ModelError`.
//!   Bodies over 6 MiB get 413 (`ValidationError`).
//!
//! Request and response bodies are exactly [`ipsight_model::wire`]'s (byte-compatible with SageMaker).
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use ipsight_model::wire::{self, WireError};
use ipsight_model::Model;

/// SageMaker Runtime's request payload limit for real-time endpoints.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Bodies above this are parsed and scored on a blocking thread rather than on an async worker:
/// about 1,500 CSV pairs, a fraction of a millisecond of work.
const INLINE_BODY_BYTES: usize = 32 * 1024;

/// An over-limit body is read and discarded up to this size before answering 413, so the client
/// (still uploading) reads the answer instead of a reset connection; beyond it the connection is
/// dropped.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// The production variant name SageMaker reports for a single-variant endpoint.
const VARIANT: &str = "AllTraffic";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    model: Arc<Model>,
}

/// The routes: `GET /ping`, `POST /invocations`, `POST /endpoints/{name}/invocations`.
pub fn router(model: Arc<Model>) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(container_invocations))
        .route("/endpoints/{name}/invocations", post(runtime_invocations))
        .with_state(AppState { model })
}

/// Binds `addr` and serves until the process ends.
pub async fn serve(model: Arc<Model>, addr: SocketAddr) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(model, listener, std::future::pending()).await
}

/// For synchronous callers (the CLI): builds a multi-threaded runtime, binds `addr`, reports the
/// bound address (useful with port 0) and serves until the process ends.
pub fn serve_blocking(
    model: Arc<Model>,
    addr: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        on_listening(listener.local_addr()?);
        serve_on(model, listener, std::future::pending()).await
    })
}

/// Serves on an already bound listener (tests bind port 0) until `shutdown` completes; requests in
/// flight are finished first.
pub async fn serve_on(
    model: Arc<Model>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(model))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn ping() -> StatusCode {
    // The model is loaded before the router exists, so a running server is a healthy one.
    StatusCode::OK
}

/// Why an invocation failed, before it is rendered for one of the two paths.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        let status = match e {
            WireError::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WireError::UnsupportedAccept(_) => StatusCode::NOT_ACCEPTABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

fn too_large(len: usize) -> Failure {
    Failure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body of {len} bytes exceeds the SageMaker InvokeEndpoint limit of \
             {MAX_BODY_BYTES} bytes (6 MiB): split the pairs into several requests"
        ),
    )
}

/// Reads the body up to [`MAX_BODY_BYTES`]. An over-limit body is drained (up to
/// [`DRAIN_LIMIT_BYTES`]) and reported with its size.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Failure> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES));
    let mut seen = 0usize;
    let mut over = declared.is_some_and(|n| n > MAX_BODY_BYTES);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("reading request body: {e}"),
            )
        })?;
        seen += chunk.len();
        if seen > MAX_BODY_BYTES {
            over = true;
        }
        if over {
            if seen > DRAIN_LIMIT_BYTES {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if over {
        return Err(too_large(declared.unwrap_or(seen).max(seen)));
    }
    Ok(buf.freeze())
}

/// Parses, scores and writes the response: the work behind both invocation paths.
async fn invoke(
    model: Arc<Model>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<u8>, &'static str), Failure> {
    let header_str = |name: header::HeaderName| {
        headers
            .get(&name)
            .map(|v: &HeaderValue| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    Failure::new(StatusCode::BAD_REQUEST, format!("{name} is not ASCII"))
                })
            })
            .transpose()
    };
    // SageMaker requires a Content-Type on InvokeEndpoint; a bare POST defaults to CSV, the
    // algorithm's primary format.
    let content_type = header_str(header::CONTENT_TYPE)?.unwrap_or_else(|| "text/csv".into());
    let accept = header_str(header::ACCEPT)?.unwrap_or_default();
    // Reject bad headers before reading a possibly large body.
    let ct = wire::ContentType::parse(&content_type)?;
    let accept = wire::Accept::parse(&accept)?;
    let body = read_body(headers, body).await?;
    let work = move || -> Result<Vec<u8>, WireError> {
        let records = wire::parse_request(&body, ct)?;
        Ok(wire::write_response(
            &wire::predict(&model, &records, accept.verbose)?,
            accept,
        ))
    };
    let out = if body_len_hint(headers) > INLINE_BODY_BYTES {
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("scoring failed: {e}"),
            )
        })??
    } else {
        work()?
    };
    Ok((out, accept.content_type()))
}

fn body_len_hint(headers: &HeaderMap) -> usize {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        // Unknown length (chunked): assume large, the blocking pool is the safe place.
        .unwrap_or(usize::MAX)
}

async fn container_invocations(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match invoke(st.model, &headers, body).await {
        Ok((out, ct)) => ([(header::CONTENT_TYPE, ct)], out).into_response(),
        Err(f) => (
            f.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            f.message,
        )
            .into_response(),
    }
}

async fn runtime_invocations(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match invoke(st.model, &headers, body).await {
        Ok((out, ct)) => (
            [
                (header::CONTENT_TYPE, ct),
                (
                    header::HeaderName::from_static("x-amzn-invoked-production-variant"),
                    VARIANT,
                ),
            ],
            out,
        )
            .into_response(),
        Err(f) if f.status == StatusCode::PAYLOAD_TOO_LARGE => {
            // The Runtime front end refuses the payload itself, before any container sees it.
            runtime_error(
                f.status,
                "ValidationError",
                serde_json::json!({ "message": f.message }),
            )
        }
        Err(f) => {
            // What SageMaker Runtime makes of a container's 4xx: a ModelError carrying the
            // container's status and message.
            let class = if f.status.is_client_error() {
                "client"
            } else {
                "server"
            };
            let message = format!(
                "Received {class} error ({}) from primary with message \"{}\".",
                f.status.as_u16(),
                f.message
            );
            runtime_error(
                StatusCode::FAILED_DEPENDENCY,
                "ModelError",
                serde_json::json!({
                    "ErrorCode": format!("{}_ERROR_FROM_MODEL", class.to_ascii_uppercase()),
                    "Message": message,
                    "OriginalStatusCode": f.status.as_u16(),
                    "OriginalMessage": f.message,
                }),
            )
        }
    }
}

fn runtime_error(status: StatusCode, code: &'static str, body: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-amzn-errortype"), code),
        ],
        body.to_string(),
    )
        .into_response()
}
