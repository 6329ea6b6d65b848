//! OTLP/gRPC receiver: the three `Export` methods, served with a raw-bytes codec so requests
//! are validated and counted on the wire format and forwarded without being decoded.
//! Authentication, `grpc-encoding` and each message's length prefix are handled before tonic
//! sees the request (tonic only knows gzip/deflate/zstd and does not bound the decompressed
//! size); every refusal is answered from the table in [`crate::receiver::refusal`].

use crate::pipeline::grpc::RawCodec;
use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::{Refusal, Router};
use crate::pipeline::wire::validate_and_count;
use crate::receiver::admission::Transport;
use crate::receiver::grpc_admission::{self, ChargeState, ChargedBody};
use crate::receiver::refusal::{ReceiverCounters, RefusalKind, Refused};
use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::NamedService;

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
    fn refuse(&self, r: &Refused) -> http::Response<tonic::body::Body> {
        self.counters.refused(r);
        let mut resp = r.grpc_status().into_http();
        if r.kind == RefusalKind::UnsupportedEncoding {
            resp.headers_mut().insert(
                "grpc-accept-encoding",
                http::HeaderValue::from_static(crate::compression::GRPC_ENCODINGS),
            );
        }
        resp
    }
}

/// Gives tonic an uncompressed request whose body checks every message's prefix
/// ([`ChargedBody`]): a message with a `grpc-encoding` is decompressed here (every codec of
/// [`crate::compression`], with the `max_recv_msg_size_mib` limit on the decompressed size)
/// and re-framed without compression. Errors are the refusals: unauthenticated, unsupported
/// encoding, too large, admission, bad data.
async fn prepare<B>(
    rx: &GrpcReceiver,
    charged: &ChargeState,
    req: http::Request<B>,
) -> Result<http::Request<axum::body::Body>, Refused>
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
    let name = req
        .headers()
        .get("grpc-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let codec = Codec::from_grpc(&name).map_err(|_| {
        Refused::new(
            RefusalKind::UnsupportedEncoding,
            format!(
                "grpc-encoding {:?} is not supported (supported: {GRPC_ENCODINGS}, identity)",
                name.trim()
            ),
        )
    })?;
    let max = rx.max_recv_bytes;
    let req =
        req.map(|b| ChargedBody::new(b, rx.budget.clone(), charged.clone(), max, codec.is_some()));
    let Some(codec) = codec else {
        return Ok(req.map(axum::body::Body::new));
    };
    let (mut parts, body) = req.into_parts();
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
                None => Refused::new(RefusalKind::BadData, format!("error reading request: {e}")),
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
    let plain: Bytes = if flag == 0 {
        message
    } else {
        match decompress(codec, &message, max) {
            Ok(v) => {
                // the decompressed copy is charged to the admission budget too
                let c = rx.budget.try_charge(v.len(), Transport::Grpc)?;
                charged.lock().charge.merge(c);
                v.into()
            }
            Err(DecodeError::TooLarge(_)) => return Err(grpc_admission::too_large(max)),
            Err(e @ DecodeError::Corrupt { .. }) => {
                return Err(Refused::new(RefusalKind::BadData, e.to_string()));
            }
        }
    };
    let mut framed = Vec::with_capacity(plain.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(plain.len() as u32).to_be_bytes());
    framed.extend_from_slice(&plain);
    parts.headers.remove("grpc-encoding");
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(http::Request::from_parts(
        parts,
        axum::body::Body::from(framed),
    ))
}

/// Handles one decoded-to-bytes request: validate, count, route. Errors are the refusals
/// (bad data, or the router's), already counted.
async fn export(rx: &GrpcReceiver, signal: Signal, body: Bytes) -> Result<Bytes, Refused> {
    let items = validate_and_count(signal, &body).map_err(|e| {
        let r = Refused::new(
            RefusalKind::BadData,
            format!("invalid {signal} request: {e}"),
        );
        rx.counters.refused(&r);
        r
    })?;
    if items == 0 {
        return Ok(Bytes::new());
    }
    match rx
        .router
        .consume(&rx.id, Payload::new(signal, body, items))
        .await
    {
        Ok(()) => {
            rx.counters.accepted(signal, items);
            Ok(Bytes::new())
        }
        Err(r) => {
            rx.counters.refused_items(signal, items);
            let r = Refused::from(r);
            rx.counters.refused(&r);
            Err(r)
        }
    }
}

struct ExportSvc {
    rx: GrpcReceiver,
    signal: Signal,
    charged: ChargeState,
}

impl tonic::server::UnaryService<Bytes> for ExportSvc {
    type Response = Bytes;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tonic::Response<Bytes>, tonic::Status>> + Send>,
    >;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let rx = self.rx.clone();
        let signal = self.signal;
        let charged = self.charged.clone();
        Box::pin(async move {
            // a compressed message was charged as it arrived; its decompressed form too
            if request.metadata().get("grpc-encoding").is_some() {
                let n = request.get_ref().len();
                match rx.budget.try_charge(n, Transport::Grpc) {
                    Ok(c) => charged.lock().charge.merge(c),
                    Err(e) => {
                        // answered and counted from `charged` once tonic returns
                        let r = Refused::from(e);
                        let status = r.grpc_status();
                        charged.lock().refused = Some(r);
                        return Err(status);
                    }
                }
            }
            export(&rx, signal, request.into_inner())
                .await
                .map(tonic::Response::new)
                .map_err(|r| r.grpc_status())
        })
    }
}

macro_rules! otlp_service {
    ($name:ident, $svc:literal, $signal:expr) => {
        /// tower service for one OTLP gRPC service.
        #[derive(Clone)]
        pub(crate) struct $name(pub(crate) GrpcReceiver);

        impl NamedService for $name {
            const NAME: &'static str = $svc;
        }

        impl<B> tower::Service<http::Request<B>> for $name
        where
            B: http_body::Body<Data = Bytes> + Send + 'static,
            B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
        {
            type Response = http::Response<tonic::body::Body>;
            type Error = std::convert::Infallible;
            type Future = std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
            >;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<B>) -> Self::Future {
                let rx = self.0.clone();
                Box::pin(async move {
                    if !req.uri().path().ends_with("/Export") {
                        // not counted: no signal's request
                        let r = Refused::new(
                            RefusalKind::UnknownEndpoint,
                            format!("unknown method {}", req.uri().path()),
                        );
                        return Ok(r.grpc_status().into_http());
                    }
                    // refused before the message is read: the memory limiter, then the budget
                    if !rx.router.memory_has_room(&rx.id, $signal, 0) {
                        rx.router.metrics.memory_limiter_refusals.inc();
                        return Ok(rx.refuse(&Refused::from(Refusal::MemoryLimit)));
                    }
                    let charged = grpc_admission::state(&rx.budget);
                    let req = match prepare(&rx, &charged, req).await {
                        Ok(r) => r,
                        Err(r) => return Ok(rx.refuse(&r)),
                    };
                    // requests arrive uncompressed from `prepare`; answers may be gzipped.
                    // Messages over the limit were refused at their prefix; tonic's own limit
                    // is a backstop
                    let mut send = EnabledCompressionEncodings::default();
                    send.enable(CompressionEncoding::Gzip);
                    let mut grpc = tonic::server::Grpc::new(RawCodec)
                        .apply_compression_config(EnabledCompressionEncodings::default(), send)
                        .apply_max_message_size_config(Some(rx.max_recv_bytes), None);
                    let res = grpc
                        .unary(
                            ExportSvc {
                                rx: rx.clone(),
                                signal: $signal,
                                charged: charged.clone(),
                            },
                            req,
                        )
                        .await;
                    // a message refused by its prefix ends the body: tonic's answer to that
                    // is replaced by the refusal's. The charge is released here, after the
                    // router took (or refused) the data
                    let refused = charged.lock().refused.take();
                    if let Some(r) = refused {
                        return Ok(rx.refuse(&r));
                    }
                    Ok(res)
                })
            }
        }
    };
}

otlp_service!(
    TraceService,
    "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal::Traces
);
otlp_service!(
    MetricsService,
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal::Metrics
);
otlp_service!(
    LogsService,
    "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal::Logs
);

/// The axum router serving all three services.
pub(crate) fn router(rx: GrpcReceiver) -> axum::Router {
    tonic::service::Routes::new(TraceService(rx.clone()))
        .add_service(MetricsService(rx.clone()))
        .add_service(LogsService(rx))
        .into_axum_router()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::admission::{AdmissionConfig, Budget};
    use crate::telemetry::metrics::{Metrics, RefusedLabels};
    use http_body_util::Full;
    use tower::Service;

    fn receiver(max_recv_bytes: usize) -> GrpcReceiver {
        let router = Arc::new(Router::new(Arc::new(Metrics::new())));
        let budget = Budget::new(
            "otlp",
            &AdmissionConfig::default(),
            &router.memory,
            router.pressure.clone(),
        );
        GrpcReceiver {
            id: "otlp".into(),
            budget,
            counters: ReceiverCounters::shared(&router.metrics, "otlp", "grpc"),
            router,
            max_recv_bytes,
            auth: None,
        }
    }

    fn refused_count(rx: &GrpcReceiver, kind: RefusalKind) -> u64 {
        rx.router
            .metrics
            .receiver_refused_reason
            .get_or_create(&RefusedLabels {
                receiver: "otlp".into(),
                transport: "grpc".into(),
                reason: kind.reason().into(),
            })
            .get()
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
    ) -> http::Response<tonic::body::Body> {
        let before = refused_count(rx, kind);
        let mut req = http::Request::post(
            "http://gw/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        )
        .header("content-type", "application/grpc")
        .header("te", "trailers");
        if let Some(e) = encoding {
            req = req.header("grpc-encoding", e);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = TraceService(rx.clone()).call(req).await.unwrap();
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

    #[tokio::test]
    async fn every_refusal_is_answered_from_the_table_and_counted() {
        use crate::compression::{Codec, compress};
        let rx = receiver(64);
        // refused at the prefix, before tonic buffers the message
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
