//! OTLP/gRPC receiver: the three unary `Export` methods, served directly on hyper's HTTP/2
//! streams so requests are validated and counted on the wire format and forwarded without
//! being decoded. The gRPC layer of a unary OTLP call is small (one length-prefixed message
//! in, one empty message and `grpc-status` out), so it is done here rather than through a
//! generic gRPC server: authentication, `grpc-encoding` (every codec of
//! [`crate::compression`], with the decompressed size bounded), each message's length prefix
//! and the admission budget are checked as the body arrives, and every refusal is answered
//! from the table in [`crate::receiver::refusal`].

use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::{Refusal, Router};
use crate::pipeline::wire::validate_and_count;
use crate::receiver::admission::Transport;
use crate::receiver::grpc_admission::{self, ChargeState, ChargedBody};
use crate::receiver::refusal::{ReceiverCounters, RefusalKind, Refused};
use bytes::Bytes;
use futures::FutureExt;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Shared state of the gRPC receiver.
#[derive(Clone)]
pub(crate) struct GrpcReceiver {
    /// The receiver's config id (`otlp`, `otlp/2`).
    pub(crate) id: Arc<str>,
    /// Admission control budget of this receiver (shared with its HTTP server).
    pub(crate) budget: Arc<crate::receiver::admission::Budget>,
    pub(crate) router: Arc<Router>,
    /// `max_recv_msg_size_mib` in bytes: the largest message, compressed or decompressed.
    pub(crate) max_recv_bytes: usize,
    /// `protocols.grpc.auth`: checked before the message is read.
    pub(crate) auth: Option<Arc<dyn crate::extension::auth::ServerAuthenticator>>,
    /// This receiver's counters on the `grpc` transport.
    pub(crate) counters: Arc<ReceiverCounters>,
}

impl GrpcReceiver {
    /// Counts and logs a refusal, and answers it from the table: its code, `RetryInfo` when
    /// retryable, and `grpc-accept-encoding` for an unsupported `grpc-encoding`.
    fn refuse(&self, r: &Refused) -> http::Response<axum::body::Body> {
        self.counters.refused(r);
        let mut resp = r.grpc_status().into_http::<axum::body::Body>();
        if r.kind == RefusalKind::UnsupportedEncoding {
            resp.headers_mut().insert(
                "grpc-accept-encoding",
                http::HeaderValue::from_static(crate::compression::GRPC_ENCODINGS),
            );
        }
        resp
    }
}

/// Reads the request's one gRPC message (uncompressed), checking each message prefix as it
/// arrives ([`ChargedBody`]): a message with a `grpc-encoding` is decompressed here (every
/// codec of [`crate::compression`], with the `max_recv_msg_size_mib` limit on the decompressed
/// size). Errors are the refusals: unauthenticated, unsupported encoding, too large,
/// admission, bad data (a body that is not exactly one length-prefixed message).
async fn read_message<B>(
    rx: &GrpcReceiver,
    charged: &ChargeState,
    req: http::Request<B>,
) -> Result<Bytes, Refused>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    use crate::compression::{Codec, DecodeError, GRPC_ENCODINGS, decompress};
    use http_body_util::BodyExt;
    if let Some(auth) = &rx.auth
        && let Err(e) = crate::extension::auth::check(auth.as_ref(), req.headers())
    {
        return Err(Refused::new(RefusalKind::Unauthenticated, e.to_string()));
    }
    let codec = match req.headers().get("grpc-encoding") {
        None => None,
        Some(v) => {
            let name = String::from_utf8_lossy(v.as_bytes());
            Codec::from_grpc(&name).map_err(|_| {
                Refused::new(
                    RefusalKind::UnsupportedEncoding,
                    format!(
                        "grpc-encoding {:?} is not supported (supported: {GRPC_ENCODINGS}, identity)",
                        name.trim()
                    ),
                )
            })?
        }
    };
    let max = rx.max_recv_bytes;
    let body = ChargedBody::new(
        req.into_body(),
        rx.budget.clone(),
        charged.clone(),
        max,
        codec.is_some(),
    );
    // messages over the limit are refused at their prefix; the limit here is a backstop
    let raw = match http_body_util::Limited::new(body, max.saturating_add(5))
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            // a message refused at its prefix (too large, bad flag, admission budget)
            let refused = charged.lock().refused.take();
            return Err(match refused {
                Some(r) => r,
                None if e.is::<http_body_util::LengthLimitError>() => {
                    grpc_admission::too_large(max)
                }
                None => crate::receiver::refusal::body_read_error(&*e),
            });
        }
    };
    let frame = match raw.len() {
        n if n < 5 => None,
        _ => {
            let len = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
            (raw.len() == 5 + len).then(|| (raw[0], raw.slice(5..)))
        }
    };
    let Some((flag, message)) = frame else {
        return Err(Refused::new(
            RefusalKind::BadData,
            "a unary request must hold exactly one gRPC message",
        ));
    };
    // the prefix check allowed flag 1 only with a supported grpc-encoding
    let (1, Some(codec)) = (flag, codec) else {
        return Ok(message);
    };
    match decompress(codec, &message, max) {
        Ok(v) => {
            // the decompressed copy is charged to the admission budget too
            charged
                .lock()
                .charge
                .grow(&rx.budget, v.len(), Transport::Grpc)?;
            Ok(v.into())
        }
        Err(DecodeError::TooLarge(_)) => Err(grpc_admission::too_large(max)),
        Err(e @ DecodeError::Corrupt { .. }) => {
            Err(Refused::new(RefusalKind::BadData, e.to_string()))
        }
    }
}

/// Handles one decoded-to-bytes request: validate, count, route. Errors are the refusals
/// (bad data, or the router's), already counted.
async fn export(rx: &GrpcReceiver, signal: Signal, body: Bytes) -> Result<(), Refused> {
    let items = validate_and_count(signal, &body).map_err(|e| {
        let r = Refused::new(
            RefusalKind::BadData,
            format!("invalid {signal} request: {e}"),
        );
        rx.counters.refused(&r);
        r
    })?;
    if items == 0 {
        return Ok(());
    }
    match rx
        .router
        .consume(&rx.id, Payload::new(signal, body, items))
        .await
    {
        Ok(()) => {
            rx.counters.accepted(signal, items);
            Ok(())
        }
        Err(r) => {
            rx.counters.refused_items(signal, items);
            let r = Refused::from(r);
            rx.counters.refused(&r);
            Err(r)
        }
    }
}

/// The `:path` of each OTLP `Export` method (`/<package>.<Service>/Export`, opentelemetry-proto
/// `opentelemetry/proto/collector/*/v1/*_service.proto`) and the signal it carries.
const EXPORT_PATHS: [(&str, Signal); 3] = [
    (
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Traces,
    ),
    (
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Metrics,
    ),
    (
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        Signal::Logs,
    ),
];

/// Checks that a request is a gRPC call (gRPC over HTTP/2, "Requests"): `POST`, over HTTP/2,
/// `content-type: application/grpc` or `application/grpc+proto` (parameters allowed). Errors:
/// method not allowed (UNIMPLEMENTED), unsupported media type (HTTP 415 with
/// INVALID_ARGUMENT) for another protocol version or content type.
fn check_call_shape<B>(req: &http::Request<B>) -> Result<(), Refused> {
    if req.method() != http::Method::POST {
        return Err(Refused::new(
            RefusalKind::MethodNotAllowed,
            format!("gRPC calls are POST, not {}", req.method()),
        ));
    }
    if req.version() != http::Version::HTTP_2 {
        return Err(Refused::new(
            RefusalKind::UnsupportedMediaType,
            format!(
                "gRPC needs HTTP/2, this request is {:?} (OTLP over HTTP/1.1 is served on the receiver's http endpoint)",
                req.version()
            ),
        ));
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    let essence = ct
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/grpc")
        || essence.eq_ignore_ascii_case(b"application/grpc+proto")
    {
        return Ok(());
    }
    Err(Refused::new(
        RefusalKind::UnsupportedMediaType,
        format!(
            "content-type {:?} is not application/grpc (or application/grpc+proto)",
            String::from_utf8_lossy(ct)
        ),
    ))
}

/// The answer to a successful `Export`: HTTP 200, `content-type: application/grpc`, one
/// empty `Export*ServiceResponse` message (a 5-byte prefix announcing 0 bytes: no
/// `partial_success`, every item was accepted) and the trailer `grpc-status: 0` (gRPC over
/// HTTP/2, "Responses").
fn exported() -> http::Response<axum::body::Body> {
    use http_body_util::BodyExt;
    const EMPTY_MESSAGE: [u8; 5] = [0; 5];
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(Bytes::from_static(&EMPTY_MESSAGE))
        .with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut resp = http::Response::new(axum::body::Body::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// The OTLP/gRPC service: the three unary `Export` methods, answered by path. Requests are
/// read, checked and answered here, on the wire format: no protobuf decoding, no codec or
/// framework layer between hyper's HTTP/2 stream and the router (each message's prefix is
/// checked by [`ChargedBody`], the answer is a fixed empty message). Any other path is
/// refused as an unknown endpoint (UNIMPLEMENTED, naming the path).
#[derive(Clone)]
pub(crate) struct OtlpGrpcService(pub(crate) GrpcReceiver);

impl OtlpGrpcService {
    async fn handle<B>(self, req: http::Request<B>) -> http::Response<axum::body::Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let rx = self.0;
        // first whether it is a gRPC call at all: an OTLP/HTTP client sent to this port must
        // get an HTTP error it understands, not a 200 carrying a grpc-status it ignores
        if let Err(r) = check_call_shape(&req) {
            let mut resp = rx.refuse(&r);
            // as grpc-go: a request that is not a gRPC call gets the HTTP status too, and the
            // message in the body, where an HTTP client shows it
            *resp.status_mut() = r.kind.answer().http;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            *resp.body_mut() = axum::body::Body::from(format!("{}\n", r.message));
            return resp;
        }
        let path = req.uri().path();
        let Some(&(_, signal)) = EXPORT_PATHS.iter().find(|(p, _)| *p == path) else {
            return rx.refuse(&Refused::new(
                RefusalKind::UnknownEndpoint,
                format!(
                    "unknown gRPC method {path}: this receiver serves Export of {}",
                    "opentelemetry.proto.collector.{trace.v1.TraceService, metrics.v1.MetricsService, logs.v1.LogsService}"
                ),
            ));
        };
        // refused before the message is read: the memory limiter, then the budget
        if !rx.router.memory_has_room(&rx.id, signal, 0) {
            rx.router.metrics.memory_limiter_refusals.inc();
            return rx.refuse(&Refused::from(Refusal::MemoryLimit));
        }
        // the request's charge is held until the router took (or refused) the data
        let charged = grpc_admission::state(&rx.budget);
        let reading = rx.counters.cancel_guard();
        let read = read_message(&rx, &charged, req).await;
        reading.done();
        let message = match read {
            Ok(m) => m,
            Err(r) => return rx.refuse(&r),
        };
        match export(&rx, signal, message).await {
            Ok(()) => exported(),
            // counted by `export`
            Err(r) => r.grpc_status().into_http::<axum::body::Body>(),
        }
    }
}

impl<B> tower::Service<http::Request<B>> for OtlpGrpcService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(self.clone().handle(req).map(Ok))
    }
}

/// The axum router serving the OTLP/gRPC service on every path.
pub(crate) fn router(rx: GrpcReceiver) -> axum::Router {
    axum::Router::new().fallback_service(OtlpGrpcService(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::test_support;
    use http_body_util::Full;
    use std::time::Duration;
    use tower::Service;

    fn receiver(max_recv_bytes: usize) -> GrpcReceiver {
        let (router, budget, counters) = test_support::parts("grpc");
        GrpcReceiver {
            id: "otlp".into(),
            budget,
            counters,
            router,
            max_recv_bytes,
            auth: None,
        }
    }

    fn refused_count(rx: &GrpcReceiver, kind: RefusalKind) -> u64 {
        test_support::refused_count(&rx.router, "grpc", kind)
    }

    /// One length-prefixed message with compressed-flag `flag`.
    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(message.len() as u32).to_be_bytes());
        v.extend_from_slice(message);
        v
    }

    /// Calls the trace service with `body` and checks that the answer is `kind`'s row of
    /// the table (code, `RetryInfo`) and that it was counted under its reason.
    async fn assert_refused(
        rx: &GrpcReceiver,
        encoding: Option<&str>,
        body: Vec<u8>,
        kind: RefusalKind,
    ) -> http::Response<axum::body::Body> {
        let before = refused_count(rx, kind);
        let mut req = http::Request::post(
            "http://gw/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        )
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
        if let Some(e) = encoding {
            req = req.header("grpc-encoding", e);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
        let status = tonic::Status::from_header_map(resp.headers())
            .unwrap_or_else(|| panic!("{kind:?}: no status in {:?}", resp.headers()));
        let answer = kind.answer();
        assert_eq!(status.code(), answer.grpc, "{kind:?}: {status:?}");
        assert_eq!(
            crate::pipeline::grpc::retry_delay(&status),
            answer.retry_after,
            "{kind:?}"
        );
        assert_eq!(refused_count(rx, kind), before + 1, "{kind:?} counted");
        resp
    }

    /// A trace request with one span (ids of the right lengths).
    fn one_span() -> Vec<u8> {
        use crate::proto::otlp_json::opentelemetry::proto::{collector, trace};
        use prost::Message;
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

    /// A body that sends the first `sent` bytes of a framed message and then nothing, read
    /// under the listener's body limits (as every gRPC request body is).
    fn stalled_body(sent: usize, limits: crate::listener::body::BodyLimits) -> axum::body::Body {
        use futures::StreamExt;
        let first = Bytes::from(framed(0, &one_span())[..sent].to_vec());
        let frames =
            futures::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(first))])
                .chain(futures::stream::pending());
        let inner = http_body_util::StreamBody::new(frames);
        axum::body::Body::new(crate::listener::body::TimedBody::new(inner, limits, None))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_slower_than_the_listener_allows_is_deadline_exceeded_not_bad_data() {
        use crate::listener::body::BodyLimits;
        let rx = receiver(4 << 20);
        for limits in [
            BodyLimits {
                read_timeout: Some(Duration::from_secs(1)),
                min_rate: 0,
                window: Duration::from_secs(10),
            },
            BodyLimits {
                read_timeout: None,
                min_rate: 1024,
                window: Duration::from_secs(10),
            },
        ] {
            let before = refused_count(&rx, RefusalKind::BodyTimeout);
            let req = http::Request::post(
                "http://gw/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            )
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(stalled_body(8, limits))
            .unwrap();
            let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
            let status = tonic::Status::from_header_map(resp.headers()).expect("status");
            assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
            let named = if limits.min_rate > 0 {
                "min_body_rate"
            } else {
                "read_timeout"
            };
            assert!(status.message().contains(named), "{status:?}");
            assert_eq!(
                refused_count(&rx, RefusalKind::BodyTimeout),
                before + 1,
                "{limits:?}"
            );
        }
        assert_eq!(refused_count(&rx, RefusalKind::BadData), 0);
    }

    #[tokio::test]
    async fn an_unknown_method_or_service_is_unimplemented_naming_it_and_counted() {
        let rx = receiver(1 << 20);
        for path in [
            "/opentelemetry.proto.collector.trace.v1.TraceService/Send",
            "/grpc.health.v1.Health/Check",
        ] {
            let before = refused_count(&rx, RefusalKind::UnknownEndpoint);
            let req = http::Request::post(format!("http://gw{path}"))
                .version(http::Version::HTTP_2)
                .header("content-type", "application/grpc")
                .body(Full::new(Bytes::from(framed(0, &one_span()))))
                .unwrap();
            let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
            let status = tonic::Status::from_header_map(resp.headers()).expect("a status");
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
            assert!(status.message().contains(path), "{path}: {status:?}");
            assert_eq!(
                refused_count(&rx, RefusalKind::UnknownEndpoint),
                before + 1,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_request_that_is_not_a_grpc_call_is_refused_before_its_body_is_read() {
        let rx = receiver(1 << 20);
        let path = "http://gw/opentelemetry.proto.collector.trace.v1.TraceService/Export";
        let cases = [
            // (method, version, content-type, kind, HTTP status)
            (
                http::Method::POST,
                http::Version::HTTP_11,
                "application/grpc",
                RefusalKind::UnsupportedMediaType,
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                http::Method::POST,
                http::Version::HTTP_2,
                "application/json",
                RefusalKind::UnsupportedMediaType,
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                http::Method::POST,
                http::Version::HTTP_2,
                "",
                RefusalKind::UnsupportedMediaType,
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                http::Method::GET,
                http::Version::HTTP_2,
                "application/grpc",
                RefusalKind::MethodNotAllowed,
                http::StatusCode::METHOD_NOT_ALLOWED,
            ),
        ];
        let mut cases: Vec<_> = cases.into_iter().map(|c| (path, c)).collect();
        // an OTLP/HTTP client pointed at the gRPC port: an HTTP error, never a 200 (its
        // exporter would take the 200 for success and drop the data)
        for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
            cases.push((
                "http://gw/v1/traces",
                (
                    http::Method::POST,
                    version,
                    "application/x-protobuf",
                    RefusalKind::UnsupportedMediaType,
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ),
            ));
        }
        for (path, (method, version, ct, kind, http_status)) in cases {
            let before = refused_count(&rx, kind);
            let mut req = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .version(version);
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            let req = req
                .body(Full::new(Bytes::from(framed(0, &one_span()))))
                .unwrap();
            let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
            let case = format!("{method} {version:?} {ct:?}");
            assert_eq!(resp.status(), http_status, "{case}");
            let status = tonic::Status::from_header_map(resp.headers()).expect("a status");
            assert_eq!(status.code(), kind.answer().grpc, "{case}");
            // the message is in the body too, where an HTTP client shows it
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&body).trim(),
                status.message(),
                "{case}"
            );
            assert!(!body.is_empty(), "{case}");
            assert_eq!(refused_count(&rx, kind), before + 1, "{case}");
        }
        // parameters and case are allowed in the content type
        let req = http::Request::post(path)
            .version(http::Version::HTTP_2)
            .header("content-type", "Application/gRPC; charset=binary")
            .body(Full::new(Bytes::from(framed(0, &[]))))
            .unwrap();
        let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert!(tonic::Status::from_header_map(resp.headers()).is_none());
    }

    #[tokio::test]
    async fn an_accepted_export_answers_one_empty_message_then_grpc_status_ok() {
        use http_body_util::BodyExt;
        let rx = receiver(1 << 20);
        // no pipeline takes traces here, so an empty request (no items) is what is accepted
        let req = http::Request::post(
            "http://gw/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        )
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc+proto")
        .body(Full::new(Bytes::from(framed(0, &[]))))
        .unwrap();
        let resp = OtlpGrpcService(rx.clone()).call(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let body = resp.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(&body.to_bytes()[..], &[0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn every_refusal_is_answered_from_the_table_and_counted() {
        use crate::compression::{Codec, compress};
        let rx = receiver(64);
        // refused at the prefix, before the message is buffered
        assert_refused(&rx, None, framed(0, &[0; 65]), RefusalKind::TooLarge).await;
        assert_refused(&rx, None, framed(2, &one_span()), RefusalKind::BadData).await;
        assert_refused(&rx, None, framed(1, &one_span()), RefusalKind::BadData).await;
        let mut cut = framed(0, &one_span());
        cut.truncate(cut.len() - 3);
        assert_refused(&rx, None, cut, RefusalKind::BadData).await;
        assert_refused(&rx, None, vec![0, 0, 0], RefusalKind::BadData).await;
        // compressed: unknown coding, corrupt, and a bomb
        let resp = assert_refused(
            &rx,
            Some("br"),
            framed(1, b"x"),
            RefusalKind::UnsupportedEncoding,
        )
        .await;
        assert!(resp.headers().contains_key("grpc-accept-encoding"));
        assert_refused(
            &rx,
            Some("gzip"),
            framed(1, b"not gzip"),
            RefusalKind::BadData,
        )
        .await;
        let bomb = compress(Codec::Gzip, &[0; 4096]);
        assert_refused(&rx, Some("gzip"), framed(1, &bomb), RefusalKind::TooLarge).await;
        assert_refused(&rx, None, framed(0, b"\xff\xff\xff"), RefusalKind::BadData).await;
        // the router's refusals: no pipeline takes traces from this receiver, then draining
        let rx = receiver(1 << 20);
        assert_refused(&rx, None, framed(0, &one_span()), RefusalKind::NoPipeline).await;
        let z = compress(Codec::Zstd, &one_span());
        assert_refused(&rx, Some("zstd"), framed(1, &z), RefusalKind::NoPipeline).await;
        rx.router.start_draining();
        assert_refused(&rx, None, framed(0, &one_span()), RefusalKind::ShuttingDown).await;
    }
}
