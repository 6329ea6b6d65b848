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
use crate::receiver::refusal::{ReceiverCounters, RefusalKind, Refused};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use std::sync::Arc;

/// Shared state of the HTTP receiver.
#[derive(Clone)]
pub(crate) struct HttpReceiver {
    /// The receiver's config id (`otlp`, `otlp/2`).
    pub(crate) id: Arc<str>,
    /// Admission control budget of this receiver (shared with its gRPC server).
    pub(crate) budget: Arc<Budget>,
    pub(crate) router: Arc<Router>,
    /// `max_request_body_size` in bytes, compressed or decompressed.
    pub(crate) max_body: usize,
    /// `protocols.http.auth`: checked before the body is read.
    pub(crate) auth: Option<Arc<dyn crate::extension::auth::ServerAuthenticator>>,
    /// This receiver's counters on the `http` transport.
    pub(crate) counters: Arc<ReceiverCounters>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// The answer to a refusal, from the table: its status, a `google.rpc.Status` body in the
/// request's format, and `Retry-After` (whole seconds) when retryable.
fn error_response(r: &Refused, format: Format) -> Response {
    let answer = r.kind.answer();
    let code = r.kind.http_body_code() as i32;
    let mut resp = match format {
        Format::Protobuf => (
            answer.http,
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus {
                code,
                message: r.message.clone(),
                details: vec![],
            }
            .encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            answer.http,
            [(http::header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": code, "message": r.message }).to_string(),
        )
            .into_response(),
    };
    if let Some(d) = answer.retry_after {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(d.as_secs()),
        );
    }
    resp
}

fn content_format(headers: &HeaderMap) -> Result<Format, Refused> {
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
    let unsupported = |m: String| Refused::new(RefusalKind::UnsupportedMediaType, m);
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        "" => Err(unsupported(
            "missing Content-Type (use application/x-protobuf or application/json)".into(),
        )),
        other => Err(unsupported(format!(
            "unsupported Content-Type {other:?} (use application/x-protobuf or application/json)"
        ))),
    }
}

/// The refusal of a body over `max_request_body_size` (`max` bytes); `what` qualifies it
/// ("" or "decompressed ").
fn too_large(what: &str, max: usize) -> Refused {
    Refused::new(
        RefusalKind::TooLarge,
        format!("{what}request body larger than max_request_body_size ({max} bytes)"),
    )
}

/// Reads at most `max` bytes of body. With `charge_frames` (no `Content-Length` was
/// charged up front) every frame is charged to the budget as it arrives, and the read
/// stops at the first frame that does not fit. Errors: too large, admission, bad data (the
/// body failed).
async fn read_charged(
    mut body: Body,
    max: usize,
    budget: &Budget,
    charge: &mut Charge,
    charge_frames: bool,
) -> Result<Bytes, Refused> {
    // a body that arrives in one chunk (the common case: it came with its headers in one
    // read) is kept as it is; later chunks are appended to one buffer sized from the body's
    // announced length
    let mut first: Option<Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| crate::receiver::refusal::body_read_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if held + data.len() > max {
            return Err(too_large("", max));
        }
        if charge_frames {
            charge.grow(budget, data.len(), Transport::Http)?;
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(one) => {
                let hint = usize::try_from(http_body::Body::size_hint(&body).lower()).unwrap_or(0);
                let want = (one.len() + data.len()).saturating_add(hint).min(max);
                buf.reserve(want);
                buf.extend_from_slice(&one);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(one) => one,
        None => buf.freeze(),
    })
}

/// gzip-decompresses `data` (members concatenated, RFC 1952) into at most `max` bytes.
/// Errors: [`DecodeError::TooLarge`] past `max` (after inflating at most `max + 1` bytes,
/// whatever the ratio), [`DecodeError::Corrupt`] for invalid gzip.
pub fn gunzip_limited(data: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    decompress(Codec::Gzip, data, max)
}

async fn handle(rx: HttpReceiver, signal: Signal, req: axum::extract::Request) -> Response {
    // the request taken whole: axum's `HeaderMap` extractor would clone the headers
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    match receive(&rx, signal, &headers, body).await {
        // an empty Export*ServiceResponse
        Ok(Format::Protobuf) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            Bytes::new(),
        )
            .into_response(),
        Ok(Format::Json) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Err(r) => {
            rx.counters.refused(&r);
            let fmt = content_format(&headers).unwrap_or(Format::Protobuf);
            let mut resp = error_response(&r, fmt);
            if r.kind == RefusalKind::Unauthenticated
                && let Some(auth) = &rx.auth
            {
                resp.headers_mut()
                    .insert(http::header::WWW_AUTHENTICATE, auth.challenge());
            }
            resp
        }
    }
}

/// Bodies of at least this many bytes are decompressed and JSON-translated on tokio's
/// blocking pool: tens of milliseconds of decoding (a 20 MiB JSON body) would otherwise hold
/// up every request that shares the worker thread. Smaller bodies decode in place, where a
/// thread hand-off would cost more than the work.
const OFF_WORKER_BYTES: usize = 256 << 10;

/// How many times its size a JSON body's decoded message tree takes (charged to admission
/// while it is decoded, see `receive`).
pub const JSON_TREE_FACTOR: usize = 4;

/// Decodes that run on the blocking pool at once: one per CPU. A decode's working memory (the
/// message tree of a JSON body, several times the body's size) is not part of the admission
/// charge, so more decodes at once than CPUs would add memory (tens of 1 MiB JSON bodies
/// decoding together held 200 MiB), not speed; the others wait, holding their charge.
fn decode_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Runs `f` (a decode of a `len`-byte body) in place, or on the blocking pool for a body of
/// [`OFF_WORKER_BYTES`] or more (at most [`decode_slots`] at once). A decode that panicked is
/// refused as bad data.
async fn off_worker<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refused> {
    if len < OFF_WORKER_BYTES {
        return Ok(f());
    }
    let _slot = decode_slots().acquire().await.map_err(|e| {
        Refused::new(
            RefusalKind::BadData,
            format!("the body could not be decoded: {e}"),
        )
    })?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Refused::new(
            RefusalKind::BadData,
            format!("the body could not be decoded: {e}"),
        )
    })
}

/// Reads, decodes, validates and routes one request; returns its format, or the refusal to
/// answer (the router's refusals with their items already counted).
async fn receive(
    rx: &HttpReceiver,
    signal: Signal,
    headers: &HeaderMap,
    body: Body,
) -> Result<Format, Refused> {
    if let Some(auth) = &rx.auth
        && let Err(e) = crate::extension::auth::check(auth.as_ref(), headers)
    {
        return Err(Refused::new(RefusalKind::Unauthenticated, e.to_string()));
    }
    let fmt = content_format(headers)?;
    let content_length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    // refused before a byte of the body is read: an announced length over the limit first
    // (a made-up length is the client's error, not memory pressure), then the memory
    // limiter, then the budget
    if let Some(n) = content_length
        && n > rx.max_body
    {
        return Err(too_large("", rx.max_body));
    }
    if !rx
        .router
        .memory_has_room(&rx.id, signal, content_length.unwrap_or(0) as u64)
    {
        rx.router.metrics.memory_limiter_refusals.inc();
        return Err(Refusal::MemoryLimit.into());
    }
    let mut charge = match content_length {
        Some(n) => rx.budget.charge_or_wait(n, Transport::Http).await?,
        None => rx.budget.none(),
    };
    let reading = rx.counters.cancel_guard();
    let raw = read_charged(
        body,
        rx.max_body,
        &rx.budget,
        &mut charge,
        content_length.is_none(),
    )
    .await;
    reading.done();
    let raw = raw?;
    // HTTP/2 ends a stream early on a client's RST_STREAM(NO_ERROR) without an error: a body
    // shorter than its Content-Length is cut, not a request (RFC 9113 8.1.1)
    if let Some(n) = content_length
        && raw.len() != n
    {
        return Err(Refused::new(
            RefusalKind::BadData,
            format!(
                "the body ended after {} of the {n} bytes its Content-Length announced",
                raw.len()
            ),
        ));
    }
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if raw.len() < OFF_WORKER_BYTES {
        return finish(rx, signal, fmt, &encoding, raw, charge).await;
    }
    // a large body is finished in a task of its own: its decoding takes long enough for the
    // client to go away meanwhile, and a request received whole is then still forwarded, or
    // refused and counted, whether or not anyone is left to read the answer
    let (done, answer) = tokio::sync::oneshot::channel();
    let rx2 = rx.clone();
    tokio::spawn(async move {
        let r = finish(&rx2, signal, fmt, &encoding, raw, charge).await;
        if let Err(Err(unheard)) = done.send(r) {
            rx2.counters.refused(&unheard);
        }
    });
    answer.await.map_err(|_| {
        Refused::new(
            RefusalKind::BadData,
            "the request could not be finished (its task ended without an answer)",
        )
    })?
}

/// Decodes (decompression, OTLP/JSON), validates, counts and routes a body read whole;
/// `charge` (the body's admission charge, to which the decoded copies are added) is held
/// until the router took or refused the data.
async fn finish(
    rx: &HttpReceiver,
    signal: Signal,
    fmt: Format,
    encoding: &str,
    raw: Bytes,
    mut charge: Charge,
) -> Result<Format, Refused> {
    let codec = Codec::from_http(encoding).map_err(|_| {
        Refused::new(
            RefusalKind::UnsupportedEncoding,
            format!(
                "unsupported Content-Encoding {:?} (supported: {HTTP_ENCODINGS}, or none)",
                encoding.trim()
            ),
        )
    })?;
    let data: Bytes = match codec {
        None => raw,
        Some(codec) => match off_worker(raw.len(), {
            let (raw, max) = (raw.clone(), rx.max_body);
            move || decompress(codec, &raw, max)
        })
        .await?
        {
            Ok(v) => {
                // the decompressed body is charged too (its size is bounded by max_body)
                charge.grow(&rx.budget, v.len(), Transport::Http)?;
                v.into()
            }
            Err(DecodeError::TooLarge(_)) => return Err(too_large("decompressed ", rx.max_body)),
            Err(e @ DecodeError::Corrupt { .. }) => {
                return Err(Refused::new(RefusalKind::BadData, e.to_string()));
            }
        },
    };
    let proto: Bytes = match fmt {
        Format::Protobuf => data,
        Format::Json => {
            // the message tree the body is read into is about four times the body (measured:
            // a 19 MiB body held ~107 MiB while decoding): charged before it is built, so many
            // large bodies at once wait or are refused instead of passing the memory bound
            charge.grow(
                &rx.budget,
                data.len().saturating_mul(JSON_TREE_FACTOR),
                Transport::Http,
            )?;
            let v = off_worker(data.len(), {
                let data = data.clone();
                move || json_to_protobuf(signal, &data)
            })
            .await??;
            // the translation buffer is charged too
            charge.grow(&rx.budget, v.len(), Transport::Http)?;
            v.into()
        }
    };
    let items = validate_and_count(signal, &proto).map_err(|e| {
        Refused::new(
            RefusalKind::BadData,
            format!("invalid {signal} request: {e}"),
        )
    })?;
    if items > 0 {
        if let Err(r) = rx
            .router
            .consume(&rx.id, Payload::new(signal, proto, items))
            .await
        {
            rx.counters.refused_items(signal, items);
            return Err(r.into());
        }
        rx.counters.accepted(signal, items);
    }
    drop(charge);
    Ok(fmt)
}

/// The axum router for the OTLP/HTTP receiver.
pub(crate) fn router(rx: HttpReceiver, cfg: &HttpConfig) -> axum::Router {
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
                move |State(rx): State<HttpReceiver>, req: axum::extract::Request| {
                    handle(rx, signal, req)
                },
            )
            .fallback(|State(rx): State<HttpReceiver>| async move {
                let r = Refused::new(
                    RefusalKind::MethodNotAllowed,
                    "method not allowed: use POST",
                );
                rx.counters.refused(&r);
                (
                    r.kind.answer().http,
                    [(http::header::ALLOW, "POST")],
                    r.message,
                )
                    .into_response()
            }),
        );
    }
    // the configured paths, named in the 404 so a client with a wrong path sees the right ones
    let paths = format!(
        "{}, {} or {}",
        cfg.traces_url_path, cfg.metrics_url_path, cfg.logs_url_path
    );
    let mut app = app
        .fallback(
            |State(rx): State<HttpReceiver>, uri: http::Uri| async move {
                let r = Refused::new(
                    RefusalKind::UnknownEndpoint,
                    format!("no OTLP endpoint at {} (use {paths})", uri.path()),
                );
                rx.counters.refused(&r);
                (r.kind.answer().http, r.message)
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::test_support;

    fn receiver(max_body: usize) -> HttpReceiver {
        let (router, budget, counters) = test_support::parts("http");
        HttpReceiver {
            id: "otlp".into(),
            budget,
            counters,
            router,
            max_body,
            auth: None,
        }
    }

    fn refused_count(rx: &HttpReceiver, kind: RefusalKind) -> u64 {
        test_support::refused_count(&rx.router, "http", kind)
    }

    /// Posts `body` with the given headers and checks that the answer is `kind`'s row of the
    /// table (status, `Retry-After`, body code) and that it was counted under its reason.
    async fn assert_refused(
        rx: &HttpReceiver,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        kind: RefusalKind,
    ) {
        let before = refused_count(rx, kind);
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let json = headers.contains(&("content-type", "application/json"));
        let mut req = http::Request::new(Body::from(body));
        *req.headers_mut() = h;
        let resp = handle(rx.clone(), Signal::Traces, req).await;
        let answer = kind.answer();
        assert_eq!(resp.status(), answer.http, "{kind:?}");
        assert_eq!(
            resp.headers()
                .get(http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string()),
            answer.retry_after.map(|d| d.as_secs().to_string()),
            "{kind:?}"
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let code = if json {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v["code"].as_i64().unwrap() as i32
        } else {
            RpcStatus::decode(&bytes[..]).unwrap().code
        };
        assert_eq!(code, kind.http_body_code() as i32, "{kind:?}");
        assert_eq!(refused_count(rx, kind), before + 1, "{kind:?} counted");
    }

    #[tokio::test]
    async fn a_body_is_read_whole_one_chunk_without_a_copy_and_bounded_across_chunks() {
        let rx = receiver(1 << 20);
        let mut charge = rx.budget.none();
        // one chunk: the same bytes, not a copy
        let one = Bytes::from(vec![7u8; 1000]);
        let got = read_charged(
            Body::from(one.clone()),
            4096,
            &rx.budget,
            &mut charge,
            false,
        )
        .await
        .unwrap();
        assert_eq!(got.as_ptr(), one.as_ptr());
        // several chunks: concatenated in order
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"")),
            Ok(Bytes::from_static(b"defg")),
            Ok(Bytes::from_static(b"h")),
        ];
        let body = Body::from_stream(futures::stream::iter(chunks));
        let got = read_charged(body, 4096, &rx.budget, &mut charge, true)
            .await
            .unwrap();
        assert_eq!(&got[..], b"abcdefgh");
        // the limit holds across chunks
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(vec![1u8; 600])),
            Ok(Bytes::from(vec![2u8; 600])),
        ];
        let body = Body::from_stream(futures::stream::iter(chunks));
        let err = read_charged(body, 1000, &rx.budget, &mut charge, false)
            .await
            .unwrap_err();
        assert_eq!(err.kind, RefusalKind::TooLarge);
    }

    #[tokio::test]
    async fn a_wrong_path_is_answered_with_the_configured_paths() {
        use tower::ServiceExt;
        let cfg = HttpConfig {
            traces_url_path: "/otlp/traces".into(),
            ..HttpConfig::default()
        };
        let rx = receiver(64);
        let app = router(rx.clone(), &cfg);
        let req = http::Request::post("/v1/traces")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), RefusalKind::UnknownEndpoint.answer().http);
        assert_eq!(refused_count(&rx, RefusalKind::UnknownEndpoint), 1);
        // a configured path asked with GET: 405 naming POST, counted under its own reason
        let get = http::Request::get("/otlp/traces")
            .body(Body::empty())
            .unwrap();
        let wrong_method = app.oneshot(get).await.unwrap();
        assert_eq!(
            wrong_method.status(),
            RefusalKind::MethodNotAllowed.answer().http
        );
        assert_eq!(wrong_method.headers()["allow"], "POST");
        assert_eq!(refused_count(&rx, RefusalKind::MethodNotAllowed), 1);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("no OTLP endpoint at /v1/traces")
                && text.contains("/otlp/traces, /v1/metrics or /v1/logs"),
            "{text}"
        );
    }

    const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
    const JSON: (&str, &str) = ("content-type", "application/json");

    /// A trace request with one span (ids of the right lengths).
    fn one_span() -> Vec<u8> {
        use crate::proto::otlp_json::opentelemetry::proto::{collector, trace};
        collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: vec![trace::v1::ResourceSpans {
                scope_spans: vec![trace::v1::ScopeSpans {
                    spans: vec![trace::v1::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "op".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn every_refusal_is_answered_from_the_table_and_counted() {
        let rx = receiver(64);
        assert_refused(
            &rx,
            &[("content-type", "text/plain")],
            vec![],
            RefusalKind::UnsupportedMediaType,
        )
        .await;
        assert_refused(
            &rx,
            &[PROTOBUF, ("content-length", "65")],
            vec![0; 65],
            RefusalKind::TooLarge,
        )
        .await;
        assert_refused(&rx, &[PROTOBUF], vec![0; 65], RefusalKind::TooLarge).await;
        assert_refused(
            &rx,
            &[PROTOBUF, ("content-encoding", "br")],
            vec![1],
            RefusalKind::UnsupportedEncoding,
        )
        .await;
        assert_refused(
            &rx,
            &[PROTOBUF, ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            RefusalKind::BadData,
        )
        .await;
        let bomb = crate::compression::compress(Codec::Gzip, &[0; 4096]);
        assert_refused(
            &rx,
            &[JSON, ("content-encoding", "gzip")],
            bomb,
            RefusalKind::TooLarge,
        )
        .await;
        assert_refused(
            &rx,
            &[PROTOBUF],
            b"\xff\xff\xff".to_vec(),
            RefusalKind::BadData,
        )
        .await;
        assert_refused(
            &rx,
            &[JSON],
            b"{\"resourceSpans\":1}".to_vec(),
            RefusalKind::BadData,
        )
        .await;
        // the router's refusals: no pipeline takes traces from this receiver, then draining
        let rx = receiver(1 << 20);
        assert_refused(&rx, &[PROTOBUF], one_span(), RefusalKind::NoPipeline).await;
        assert_refused(&rx, &[JSON], b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"op\"}]}]}]}".to_vec(), RefusalKind::NoPipeline).await;
        rx.router.start_draining();
        assert_refused(&rx, &[PROTOBUF], one_span(), RefusalKind::ShuttingDown).await;
        let items = rx.router.metrics.receiver_refused.get(
            Signal::Traces,
            &crate::telemetry::metrics::ReceiverLabels {
                receiver: "otlp".into(),
                transport: "http".into(),
            },
        );
        assert_eq!(items, 3, "the spans of the router's refusals are counted");
    }

    /// Bodies over `OFF_WORKER_BYTES` are decoded on the blocking pool, with the same
    /// answers: a good one decodes (and reaches the router, which has no pipeline here), a
    /// bad one is refused naming where, compressed or not.
    #[tokio::test]
    async fn large_bodies_decode_off_the_worker_with_the_same_answers() {
        let rx = receiver(8 << 20);
        let span = r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op"}"#;
        let spans = vec![span; 4000].join(",");
        let good = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
        assert!(good.len() > OFF_WORKER_BYTES);
        assert_refused(
            &rx,
            &[JSON],
            good.clone().into_bytes(),
            RefusalKind::NoPipeline,
        )
        .await;
        let gz = crate::compression::compress(Codec::Gzip, good.as_bytes());
        assert_refused(
            &rx,
            &[JSON, ("content-encoding", "gzip")],
            gz,
            RefusalKind::NoPipeline,
        )
        .await;
        let bad = good.replacen(r#""name":"op""#, r#""name":7"#, 1);
        let err = off_worker(bad.len(), move || {
            json_to_protobuf(Signal::Traces, bad.as_bytes())
        })
        .await
        .expect("decoded")
        .expect_err("a number for a string");
        assert!(
            err.to_string()
                .contains("resourceSpans[0].scopeSpans[0].spans[0].name"),
            "{err}"
        );
    }

    #[test]
    fn gunzip_limited_errors_are_typed() {
        let z = crate::compression::compress(Codec::Gzip, &[7; 100]);
        assert_eq!(gunzip_limited(&z, 100).unwrap(), vec![7; 100]);
        assert_eq!(gunzip_limited(&z, 99), Err(DecodeError::TooLarge(99)));
        assert!(matches!(
            gunzip_limited(b"not gzip", 100),
            Err(DecodeError::Corrupt { codec: "gzip", .. })
        ));
    }
}
