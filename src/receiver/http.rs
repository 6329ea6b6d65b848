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
use crate::receiver::admission::{Budget, Charge, Transport};
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
    /// Admission control budget of this receiver (shared with its gRPC server).
    pub budget: Arc<Budget>,
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

/// Why a body could not be read.
enum ReadError {
    /// over `max_request_body_size` (413)
    TooLarge,
    /// admission control refused the bytes as they streamed in (429)
    Refused(String),
    /// the body itself failed (400)
    Bad(String),
}

/// Reads at most `max` bytes of body. With `charge_frames` (no `Content-Length` was
/// charged up front) every frame is charged to the budget as it arrives, and the read
/// stops at the first frame that does not fit.
async fn read_charged(
    mut body: Body,
    max: usize,
    budget: &Budget,
    charge: &mut Charge,
    charge_frames: bool,
) -> Result<Bytes, ReadError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ReadError::Bad(format!("error reading request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > max {
            return Err(ReadError::TooLarge);
        }
        if charge_frames {
            charge.merge(
                budget
                    .try_charge(data.len(), Transport::Http)
                    .map_err(|e| ReadError::Refused(e.to_string()))?,
            );
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// gzip-decompresses with a hard output limit.
pub fn gunzip_limited(data: &[u8], max: usize) -> Result<Vec<u8>, Result<String, ()>> {
    gunzip_charged(data, max, &mut |_| true).map_err(|e| match e {
        ReadError::TooLarge | ReadError::Refused(_) => Err(()),
        ReadError::Bad(m) => Ok(m),
    })
}

/// gzip-decompresses with a hard output limit, asking `charge` for every 64 KiB of output
/// before it is kept (false: refused by admission control).
fn gunzip_charged(
    data: &[u8],
    max: usize,
    charge: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, ReadError> {
    const STEP: usize = 64 << 10;
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(data);
    let mut chunk = vec![0u8; STEP];
    loop {
        let n = match dec.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Bad(format!("invalid gzip body: {e}"))),
        };
        if out.len() + n > max {
            return Err(ReadError::TooLarge);
        }
        if !charge(n) {
            return Err(ReadError::Refused(
                "admission control: decompressed body does not fit request_limit_mib; retry later"
                    .into(),
            ));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// A retryable refusal before or while reading a body: 429 with `Retry-After`.
fn refuse_retryable(rx: &HttpReceiver, fmt: Format, reason: &str, message: &str) -> Response {
    rx.router
        .metrics
        .receiver_refused_reason
        .get_or_create(&RefusedLabels {
            receiver: rx.id.to_string(),
            transport: "http".into(),
            reason: reason.into(),
        })
        .inc();
    error_response(StatusCode::TOO_MANY_REQUESTS, fmt, message, Some(1))
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
    let content_length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    // refused before a byte of the body is read: the memory limiter first, then the budget
    if !rx
        .router
        .memory_has_room(&rx.id, signal, content_length.unwrap_or(0) as u64)
    {
        rx.router.metrics.memory_limiter_refusals.inc();
        return refuse_retryable(
            &rx,
            fmt,
            "memory_limit",
            &crate::pipeline::router::Refusal::MemoryLimit.to_string(),
        );
    }
    let mut charge = match content_length {
        Some(n) if n > rx.max_body => {
            return refuse_bad(&rx, StatusCode::PAYLOAD_TOO_LARGE, fmt, &too_large);
        }
        Some(n) => match rx.budget.charge_or_wait(n, Transport::Http).await {
            Ok(c) => c,
            Err(e) => return refuse_retryable(&rx, fmt, "admission", &e.to_string()),
        },
        None => rx.budget.none(),
    };
    let raw = match read_charged(
        body,
        rx.max_body,
        &rx.budget,
        &mut charge,
        content_length.is_none(),
    )
    .await
    {
        Ok(b) => b,
        Err(ReadError::TooLarge) => {
            return refuse_bad(&rx, StatusCode::PAYLOAD_TOO_LARGE, fmt, &too_large);
        }
        Err(ReadError::Refused(m)) => return refuse_retryable(&rx, fmt, "admission", &m),
        Err(ReadError::Bad(m)) => return refuse_bad(&rx, StatusCode::BAD_REQUEST, fmt, &m),
    };
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let data: Bytes = match Codec::from_http(&encoding) {
        Ok(None) => raw,
        Ok(Some(codec)) => match decompress(codec, &raw, rx.max_body) {
            Ok(v) => {
                // the decompressed body is charged too (its size is bounded by max_body)
                match rx.budget.try_charge(v.len(), Transport::Http) {
                    Ok(c) => charge.merge(c),
                    Err(e) => return refuse_retryable(&rx, fmt, "admission", &e.to_string()),
                }
                v.into()
            }
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
            Ok(v) => {
                // the translation buffer is charged too
                match rx.budget.try_charge(v.len(), Transport::Http) {
                    Ok(c) => charge.merge(c),
                    Err(e) => return refuse_retryable(&rx, fmt, "admission", &e.to_string()),
                }
                v.into()
            }
            Err(e) => return refuse_bad(&rx, StatusCode::BAD_REQUEST, fmt, &e.to_string()),
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
