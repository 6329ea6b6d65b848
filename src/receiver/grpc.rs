//! OTLP/gRPC receiver: the three `Export` methods, served with a raw-bytes codec so requests
//! are validated and counted on the wire format and forwarded without being decoded.

use crate::pipeline::grpc::RawCodec;
use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::Router;
use crate::pipeline::wire::validate_and_count;
use crate::receiver::refusal::{ReceiverCounters, RefusalKind, Refused};
use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::NamedService;

/// Shared state of the gRPC receiver.
#[derive(Clone)]
pub struct GrpcReceiver {
    pub id: Arc<str>,
    pub router: Arc<Router>,
    pub max_recv_bytes: usize,
    /// this receiver's counters on the `grpc` transport
    pub counters: Arc<ReceiverCounters>,
}

impl GrpcReceiver {
    /// Receiver `id` routing into `router`, refusing messages over `max_recv_bytes`.
    pub fn new(id: &str, router: Arc<Router>, max_recv_bytes: usize) -> Self {
        let counters = Arc::new(ReceiverCounters::new(router.metrics.clone(), id, "grpc"));
        GrpcReceiver {
            id: id.into(),
            router,
            max_recv_bytes,
            counters,
        }
    }
}

/// Handles one decoded-to-bytes request: validate, count, route, map refusals to statuses
/// through the refusal table.
pub async fn export(
    rx: &GrpcReceiver,
    signal: Signal,
    body: Bytes,
) -> Result<Bytes, tonic::Status> {
    let items = match validate_and_count(signal, &body) {
        Ok(n) => n,
        Err(e) => {
            let r = Refused::new(
                RefusalKind::BadData,
                format!("invalid {signal} request: {e}"),
            );
            rx.counters.refused(r.kind, signal, 0);
            return Err(r.grpc_status());
        }
    };
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
            let r = Refused::from(r);
            rx.counters.refused(r.kind, signal, items);
            Err(r.grpc_status())
        }
    }
}

struct ExportSvc {
    rx: GrpcReceiver,
    signal: Signal,
}

impl tonic::server::UnaryService<Bytes> for ExportSvc {
    type Response = Bytes;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tonic::Response<Bytes>, tonic::Status>> + Send>,
    >;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let rx = self.rx.clone();
        let signal = self.signal;
        Box::pin(async move {
            export(&rx, signal, request.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }
}

macro_rules! otlp_service {
    ($name:ident, $svc:literal, $signal:expr) => {
        /// tower service for one OTLP gRPC service.
        #[derive(Clone)]
        pub struct $name(pub GrpcReceiver);

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
                        return Ok(tonic::Status::unimplemented(format!(
                            "unknown method {}",
                            req.uri().path()
                        ))
                        .into_http());
                    }
                    let mut enc = EnabledCompressionEncodings::default();
                    enc.enable(CompressionEncoding::Gzip);
                    let max = rx.max_recv_bytes;
                    let mut grpc = tonic::server::Grpc::new(RawCodec)
                        .apply_compression_config(enc, enc)
                        .apply_max_message_size_config(Some(max), None);
                    let mut res = grpc
                        .unary(
                            ExportSvc {
                                rx,
                                signal: $signal,
                            },
                            req,
                        )
                        .await;
                    too_large_is_resource_exhausted(&mut res, max);
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

/// Answers the two failures tonic itself produces before our handler runs per the refusal
/// table, keyed on tonic's status codes (our handler never returns either code): a message
/// over `max_recv_msg_size_mib` is OUT_OF_RANGE from tonic and [`RefusalKind::TooLarge`] here;
/// a body that does not decompress is INTERNAL from tonic and [`RefusalKind::BadData`] here
/// (the client's fault).
fn too_large_is_resource_exhausted(res: &mut http::Response<tonic::body::Body>, max: usize) {
    let code = res
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32);
    let refused = match code {
        Some(tonic::Code::OutOfRange) => Refused::new(
            RefusalKind::TooLarge,
            format!("request larger than max_recv_msg_size_mib ({max} bytes)"),
        ),
        Some(tonic::Code::Internal) => {
            let detail = res
                .headers()
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .unwrap_or("")
                .to_string();
            Refused::new(RefusalKind::BadData, detail)
        }
        _ => return,
    };
    let h = res.headers_mut();
    let code = refused.kind.answer().grpc as i32;
    h.insert("grpc-status", http::HeaderValue::from(code));
    if refused.kind == RefusalKind::TooLarge
        && let Ok(v) = http::HeaderValue::from_str(&refused.message.replace(' ', "%20"))
    {
        h.insert("grpc-message", v);
    }
}

/// The axum router serving all three services.
pub fn router(rx: GrpcReceiver) -> axum::Router {
    tonic::service::Routes::new(TraceService(rx.clone()))
        .add_service(MetricsService(rx.clone()))
        .add_service(LogsService(rx))
        .into_axum_router()
}
