//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON
//! bodies, optionally gzip-compressed. The size limit applies to the decompressed body too,
//! so a gzip bomb is a 413, not an OOM. Answers are `Export*ServiceResponse` (or a
//! `google.rpc.Status` on errors) in the request's content type.

use crate::pipeline::grpc::RpcStatus;
use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::Router;
use crate::pipeline::wire::validate_and_count;
use crate::receiver::config::HttpConfig;
use crate::receiver::json::json_to_protobuf;
use crate::receiver::refusal::{ReceiverCounters, RefusalKind, Refused};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use std::io::Read;
use std::sync::Arc;
use thiserror::Error;

#[derive(Clone)]
pub struct HttpReceiver {
    pub id: Arc<str>,
    pub router: Arc<Router>,
    pub max_body: usize,
    /// this receiver's counters on the `http` transport
    pub counters: Arc<ReceiverCounters>,
}

impl HttpReceiver {
    /// Receiver `id` routing into `router`, refusing bodies over `max_body` bytes.
    pub fn new(id: &str, router: Arc<Router>, max_body: usize) -> Self {
        let counters = Arc::new(ReceiverCounters::new(router.metrics.clone(), id, "http"));
        HttpReceiver {
            id: id.into(),
            router,
            max_body,
            counters,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// An error answer in the request's format.
fn error_response(
    status: StatusCode,
    format: Format,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::NOT_FOUND => 5,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        _ => 2,
    };
    let mut resp = match format {
        Format::Protobuf => (
            status,
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus {
                code,
                message: message.to_string(),
                details: vec![],
            }
            .encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response(),
    };
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(s));
    }
    resp
}

fn content_format(headers: &HeaderMap) -> Result<Format, String> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        "" => Err("missing Content-Type (use application/x-protobuf or application/json)".into()),
        other => Err(format!(
            "unsupported Content-Type {other:?} (use application/x-protobuf or application/json)"
        )),
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    /// Over the size limit (compressed or decompressed).
    #[error("body larger than the limit")]
    TooLarge,
    /// Unreadable: a transport error or a corrupt compressed stream.
    #[error("{0}")]
    Invalid(String),
}

/// Reads at most `max` bytes of body.
async fn read_limited(body: Body, max: usize) -> Result<Bytes, BodyError> {
    let limited = http_body_util::Limited::new(body, max);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Invalid(format!(
                    "error reading request body: {e}"
                )))
            }
        }
    }
}

/// gzip-decompresses with a hard output limit.
pub fn gunzip_limited(data: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity((data.len() * 4).min(max));
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    match dec.read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(BodyError::TooLarge),
        Ok(_) => Ok(out),
        Err(e) => Err(BodyError::Invalid(format!("invalid gzip body: {e}"))),
    }
}

async fn handle(rx: HttpReceiver, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let fmt = match content_format(&headers) {
        Ok(f) => f,
        Err(m) => {
            return refuse(
                &rx,
                signal,
                Format::Protobuf,
                Refused::new(RefusalKind::UnsupportedMediaType, m),
                0,
            );
        }
    };
    match accept(&rx, signal, &headers, body, fmt).await {
        Ok(()) => {}
        Err((r, items)) => return refuse(&rx, signal, fmt, r, items),
    }
    // an empty Export*ServiceResponse
    match fmt {
        Format::Protobuf => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            Bytes::new(),
        )
            .into_response(),
        Format::Json => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
    }
}

/// Reads, decompresses, converts, validates and routes one request. A refusal comes with
/// the number of items it held (0 when refused before they were counted).
async fn accept(
    rx: &HttpReceiver,
    signal: Signal,
    headers: &HeaderMap,
    body: Body,
    fmt: Format,
) -> Result<(), (Refused, u64)> {
    let bad = |m: String| (Refused::new(RefusalKind::BadData, m), 0);
    let too_large = |prefix: &str| {
        let m = format!(
            "{prefix}request body larger than max_request_body_size ({} bytes)",
            rx.max_body
        );
        (Refused::new(RefusalKind::TooLarge, m), 0)
    };
    let raw = match read_limited(body, rx.max_body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large("")),
        Err(BodyError::Invalid(m)) => return Err(bad(m)),
    };
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let data: Bytes = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => match gunzip_limited(&raw, rx.max_body) {
            Ok(v) => v.into(),
            Err(BodyError::TooLarge) => return Err(too_large("decompressed ")),
            Err(BodyError::Invalid(m)) => return Err(bad(m)),
        },
        other => {
            let m = format!("unsupported Content-Encoding {other:?} (use gzip or none)");
            return Err((Refused::new(RefusalKind::UnsupportedMediaType, m), 0));
        }
    };
    let proto: Bytes = match fmt {
        Format::Protobuf => data,
        Format::Json => json_to_protobuf(signal, &data).map_err(bad)?.into(),
    };
    let items = validate_and_count(signal, &proto)
        .map_err(|e| bad(format!("invalid {signal} request: {e}")))?;
    if items > 0 {
        rx.router
            .consume(&rx.id, Payload::new(signal, proto, items))
            .await
            .map_err(|r| (Refused::from(r), items))?;
        rx.counters.accepted(signal, items);
    }
    Ok(())
}

/// Counts a refusal and answers it per the refusal table.
fn refuse(rx: &HttpReceiver, signal: Signal, fmt: Format, r: Refused, items: u64) -> Response {
    rx.counters.refused(r.kind, signal, items);
    let a = r.kind.answer();
    error_response(a.http, fmt, &r.message, a.retry_after.map(|d| d.as_secs()))
}

/// The axum router for the OTLP/HTTP receiver.
pub fn router(rx: HttpReceiver, cfg: &HttpConfig) -> axum::Router {
    use axum::routing::post;
    let mut app = axum::Router::new();
    for (path, signal) in [
        (&cfg.traces_url_path, Signal::Traces),
        (&cfg.metrics_url_path, Signal::Metrics),
        (&cfg.logs_url_path, Signal::Logs),
    ] {
        app = app.route(
            path,
            post(
                move |State(rx): State<HttpReceiver>, headers: HeaderMap, body: Body| {
                    handle(rx, signal, headers, body)
                },
            )
            .fallback(|| async {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(http::header::ALLOW, "POST")],
                    "method not allowed: use POST",
                )
                    .into_response()
            }),
        );
    }
    let mut app = app
        .fallback(|uri: http::Uri| async move {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "no OTLP endpoint at {} (use /v1/traces, /v1/metrics or /v1/logs)",
                    uri.path()
                ),
            )
        })
        .with_state(rx);
    if let Some(cors) = &cfg.cors
        && !cors.allowed_origins.is_empty()
    {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let origins: Vec<String> = cors.allowed_origins.clone();
        let allow = if origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::predicate(move |origin: &http::HeaderValue, _| {
                let o = origin.to_str().unwrap_or("");
                origins.iter().any(|pat| match pat.split_once('*') {
                    Some((pre, post)) => {
                        o.starts_with(pre) && o.ends_with(post) && o.len() >= pre.len() + post.len()
                    }
                    None => pat == o,
                })
            })
        };
        let mut headers: Vec<http::HeaderName> =
            vec![http::header::CONTENT_TYPE, http::header::CONTENT_ENCODING];
        headers.extend(cors.allowed_headers.iter().filter_map(|h| h.parse().ok()));
        let mut layer = CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST])
            .allow_headers(headers);
        if let Some(age) = cors.max_age {
            layer = layer.max_age(std::time::Duration::from_secs(age));
        }
        app = app.layer(layer);
    }
    app
}
