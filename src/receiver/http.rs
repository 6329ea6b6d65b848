//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON
//! bodies, optionally compressed (every `Content-Encoding` of [`crate::compression`]). The
//! size limit applies to the decompressed body too, so a bomb in any codec is a 413, not an
//! OOM. With `auth`, a request without an accepted credential is a 401 before its body is
//! read. Answers are `Export*ServiceResponse` (or a
//! `google.rpc.Status` on errors) in the request's content type.

use crate::compression::{Codec, DecodeError, HTTP_ENCODINGS, decompress};
use crate::pipeline::grpc::RpcStatus;
use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::{Refusal, Router};
use crate::pipeline::wire::validate_and_count;
use crate::receiver::config::HttpConfig;
use crate::receiver::json::json_to_protobuf;
use crate::telemetry::metrics::{ReceiverLabels, RefusedLabels};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use std::io::Read;
use std::sync::Arc;

#[derive(Clone)]
pub struct HttpReceiver {
    pub id: Arc<str>,
    pub router: Arc<Router>,
    pub max_body: usize,
    /// `protocols.http.auth`: checked before the body is read.
    pub auth: Option<Arc<dyn crate::extension::auth::ServerAuthenticator>>,
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
        StatusCode::UNAUTHORIZED => 16,
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

/// Reads at most `max` bytes of body; `Err(true)` when over the limit.
async fn read_limited(body: Body, max: usize) -> Result<Bytes, Result<String, ()>> {
    let limited = http_body_util::Limited::new(body, max);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(Err(()))
            } else {
                Err(Ok(format!("error reading request body: {e}")))
            }
        }
    }
}

/// gzip-decompresses with a hard output limit.
pub fn gunzip_limited(data: &[u8], max: usize) -> Result<Vec<u8>, Result<String, ()>> {
    let mut out = Vec::with_capacity((data.len() * 4).min(max));
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    match dec.read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(Err(())),
        Ok(_) => Ok(out),
        Err(e) => Err(Ok(format!("invalid gzip body: {e}"))),
    }
}

async fn handle(rx: HttpReceiver, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    if let Some(auth) = &rx.auth
        && let Err(e) = crate::extension::auth::check(auth.as_ref(), &headers)
    {
        let fmt = content_format(&headers).unwrap_or(Format::Protobuf);
        let msg = e.to_string();
        crate::receiver::refusal::record(
            &rx.router.metrics,
            &rx.id,
            "http",
            "unauthenticated",
            &msg,
        );
        let mut resp = error_response(StatusCode::UNAUTHORIZED, fmt, &msg, None);
        resp.headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, auth.challenge());
        return resp;
    }
    let fmt = match content_format(&headers) {
        Ok(f) => f,
        Err(m) => {
            return refuse_bad(
                &rx,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Format::Protobuf,
                &m,
            );
        }
    };
    let too_large = format!(
        "request body larger than max_request_body_size ({} bytes)",
        rx.max_body
    );
    let raw = match read_limited(body, rx.max_body).await {
        Ok(b) => b,
        Err(Err(())) => return refuse_bad(&rx, StatusCode::PAYLOAD_TOO_LARGE, fmt, &too_large),
        Err(Ok(m)) => return refuse_bad(&rx, StatusCode::BAD_REQUEST, fmt, &m),
    };
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let data: Bytes = match Codec::from_http(&encoding) {
        Ok(None) => raw,
        Ok(Some(codec)) => match decompress(codec, &raw, rx.max_body) {
            Ok(v) => v.into(),
            Err(DecodeError::TooLarge(_)) => {
                return refuse_bad(
                    &rx,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    fmt,
                    &format!("decompressed {too_large}"),
                );
            }
            Err(e) => return refuse_bad(&rx, StatusCode::BAD_REQUEST, fmt, &e.to_string()),
        },
        Err(_) => {
            return refuse_with(
                &rx,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                fmt,
                "unsupported_encoding",
                &format!(
                    "unsupported Content-Encoding {:?} (supported: {HTTP_ENCODINGS}, or none)",
                    encoding.trim()
                ),
            );
        }
    };
    let proto: Bytes = match fmt {
        Format::Protobuf => data,
        Format::Json => match json_to_protobuf(signal, &data) {
            Ok(v) => v.into(),
            Err(m) => return refuse_bad(&rx, StatusCode::BAD_REQUEST, fmt, &m),
        },
    };
    let items = match validate_and_count(signal, &proto) {
        Ok(n) => n,
        Err(e) => {
            return refuse_bad(
                &rx,
                StatusCode::BAD_REQUEST,
                fmt,
                &format!("invalid {signal} request: {e}"),
            );
        }
    };
    let labels = ReceiverLabels {
        receiver: rx.id.to_string(),
        transport: "http".into(),
    };
    let metrics = &rx.router.metrics;
    if items > 0 {
        if let Err(r) = rx
            .router
            .consume(&rx.id, Payload::new(signal, proto, items))
            .await
        {
            metrics.receiver_refused.inc(signal, &labels, items);
            metrics
                .receiver_refused_reason
                .get_or_create(&RefusedLabels {
                    receiver: rx.id.to_string(),
                    transport: "http".into(),
                    reason: r.reason().into(),
                })
                .inc();
            let (status, retry) = match &r {
                Refusal::MemoryLimit | Refusal::QueueFull(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, Some(1))
                }
                Refusal::ShuttingDown | Refusal::StorageUnavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, Some(1))
                }
                Refusal::NoPipeline(_) => (StatusCode::NOT_FOUND, None),
                Refusal::BadData(_) => (StatusCode::BAD_REQUEST, None),
            };
            return error_response(status, fmt, &r.to_string(), retry);
        }
        metrics.receiver_accepted.inc(signal, &labels, items);
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

fn refuse_bad(rx: &HttpReceiver, status: StatusCode, fmt: Format, message: &str) -> Response {
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_data",
    };
    refuse_with(rx, status, fmt, reason, message)
}

fn refuse_with(
    rx: &HttpReceiver,
    status: StatusCode,
    fmt: Format,
    reason: &str,
    message: &str,
) -> Response {
    crate::receiver::refusal::record(&rx.router.metrics, &rx.id, "http", reason, message);
    error_response(status, fmt, message, None)
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
        let mut headers: Vec<http::HeaderName> = vec![
            http::header::CONTENT_TYPE,
            http::header::CONTENT_ENCODING,
            http::header::AUTHORIZATION,
        ];
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
