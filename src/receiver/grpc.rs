//! OTLP/gRPC receiver: the three `Export` methods, served with a raw-bytes codec so requests
//! are validated and counted on the wire format and forwarded without being decoded.
//! Authentication and `grpc-encoding` are handled before tonic sees the request (tonic only
//! knows gzip/deflate/zstd and does not bound the decompressed size).

use crate::pipeline::grpc::{RawCodec, status_with_retry};
use crate::pipeline::payload::{Payload, Signal};
use crate::pipeline::router::{Refusal, Router};
use crate::pipeline::wire::validate_and_count;
use crate::receiver::admission::Transport;
use crate::receiver::grpc_admission::{self, ChargeState};
use crate::telemetry::metrics::{ReceiverLabels, RefusedLabels};
use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::NamedService;

/// Shared state of the gRPC receiver.
#[derive(Clone)]
pub struct GrpcReceiver {
    pub id: Arc<str>,
    /// Admission control budget of this receiver (shared with its HTTP server).
    pub budget: Arc<crate::receiver::admission::Budget>,
    pub router: Arc<Router>,
    pub max_recv_bytes: usize,
    /// `protocols.grpc.auth`: checked before the message is read.
    pub auth: Option<Arc<dyn crate::extension::auth::ServerAuthenticator>>,
}

impl GrpcReceiver {
    /// Counts and logs a refusal made before the router.
    fn refuse(&self, reason: &str, status: tonic::Status) -> http::Response<tonic::body::Body> {
        crate::receiver::refusal::record(
            &self.router.metrics,
            &self.id,
            "grpc",
            reason,
            status.message(),
        );
        status.into_http()
    }
}

/// Gives tonic an uncompressed request: a message with a `grpc-encoding` is decompressed
/// here (every codec of [`crate::compression`], with the `max_recv_msg_size_mib` limit on
/// the decompressed size) and re-framed without compression. Refusals come back as finished
/// responses: UNAUTHENTICATED, UNIMPLEMENTED (unknown coding, with `grpc-accept-encoding`),
/// RESOURCE_EXHAUSTED (too large), INVALID_ARGUMENT (corrupt).
async fn prepare<B>(
    rx: &GrpcReceiver,
    charged: &ChargeState,
    req: http::Request<B>,
) -> Result<http::Request<axum::body::Body>, http::Response<tonic::body::Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    use crate::compression::{Codec, DecodeError, GRPC_ENCODINGS, decompress};
    use http_body_util::BodyExt;
    if let Some(auth) = &rx.auth
        && let Err(e) = crate::extension::auth::check(auth.as_ref(), req.headers())
    {
        return Err(rx.refuse(
            "unauthenticated",
            tonic::Status::unauthenticated(e.to_string()),
        ));
    }
    let name = req
        .headers()
        .get("grpc-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let codec = match Codec::from_grpc(&name) {
        Ok(None) => return Ok(req.map(axum::body::Body::new)),
        Ok(Some(c)) => c,
        Err(_) => {
            let mut resp = rx.refuse(
                "unsupported_encoding",
                tonic::Status::unimplemented(format!(
                    "grpc-encoding {:?} is not supported (supported: {GRPC_ENCODINGS}, identity)",
                    name.trim()
                )),
            );
            resp.headers_mut().insert(
                "grpc-accept-encoding",
                http::HeaderValue::from_static(GRPC_ENCODINGS),
            );
            return Err(resp);
        }
    };
    let max = rx.max_recv_bytes;
    let too_large = || {
        tonic::Status::resource_exhausted(format!(
            "request larger than max_recv_msg_size_mib ({max} bytes)"
        ))
    };
    let (mut parts, body) = req.into_parts();
    let raw = match http_body_util::Limited::new(body, max.saturating_add(5))
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(rx.refuse("too_large", too_large()));
        }
        // a frame refused by the admission budget: the caller answers and counts it
        Err(_) if charged.lock().refused.is_some() => {
            return Err(admission_status("admission budget").into_http());
        }
        Err(e) => {
            return Err(rx.refuse(
                "bad_data",
                tonic::Status::invalid_argument(format!("error reading request: {e}")),
            ));
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
        return Err(rx.refuse(
            "bad_data",
            tonic::Status::invalid_argument("a unary request must hold exactly one gRPC message"),
        ));
    };
    let plain: Bytes = if flag == 0 {
        message
    } else {
        match decompress(codec, &message, max) {
            Ok(v) => {
                // the decompressed copy is charged to the admission budget too; a refusal is
                // answered by the caller from `charged.refused`
                match rx.budget.try_charge(v.len(), Transport::Grpc) {
                    Ok(c) => charged.lock().charge.merge(c),
                    Err(e) => {
                        let m = e.to_string();
                        let resp = admission_status(&m).into_http();
                        charged.lock().refused = Some(m);
                        return Err(resp);
                    }
                }
                v.into()
            }
            Err(DecodeError::TooLarge(_)) => return Err(rx.refuse("too_large", too_large())),
            Err(e) => {
                return Err(rx.refuse("bad_data", tonic::Status::invalid_argument(e.to_string())));
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

/// Handles one decoded-to-bytes request: validate, count, route, map refusals to statuses.
pub async fn export(
    rx: &GrpcReceiver,
    signal: Signal,
    body: Bytes,
) -> Result<Bytes, tonic::Status> {
    let labels = ReceiverLabels {
        receiver: rx.id.to_string(),
        transport: "grpc".into(),
    };
    let metrics = &rx.router.metrics;
    let items = match validate_and_count(signal, &body) {
        Ok(n) => n,
        Err(e) => {
            let msg = format!("invalid {signal} request: {e}");
            crate::receiver::refusal::record(metrics, &rx.id, "grpc", "bad_data", &msg);
            return Err(tonic::Status::invalid_argument(msg));
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
            metrics.receiver_accepted.inc(signal, &labels, items);
            Ok(Bytes::new())
        }
        Err(r) => {
            metrics.receiver_refused.inc(signal, &labels, items);
            metrics
                .receiver_refused_reason
                .get_or_create(&RefusedLabels {
                    receiver: rx.id.to_string(),
                    transport: "grpc".into(),
                    reason: r.reason().into(),
                })
                .inc();
            Err(refusal_status(&r))
        }
    }
}

/// RESOURCE_EXHAUSTED with `RetryInfo`: the OTLP exporter retries it after the delay.
fn admission_status(message: &str) -> tonic::Status {
    status_with_retry(
        tonic::Code::ResourceExhausted,
        message,
        Duration::from_secs(1),
    )
}

fn refusal_status(r: &Refusal) -> tonic::Status {
    match r {
        Refusal::MemoryLimit => status_with_retry(
            tonic::Code::ResourceExhausted,
            &r.to_string(),
            Duration::from_secs(1),
        ),
        Refusal::QueueFull(_) | Refusal::StorageUnavailable(_) | Refusal::ShuttingDown => {
            status_with_retry(
                tonic::Code::Unavailable,
                &r.to_string(),
                Duration::from_secs(1),
            )
        }
        Refusal::NoPipeline(_) => tonic::Status::unimplemented(r.to_string()),
        Refusal::BadData(m) => tonic::Status::invalid_argument(m.clone()),
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
                    Err(e) => return Err(admission_status(&e.to_string())),
                }
            }
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
                    // refused before the message is read: the memory limiter, then the budget
                    if !rx.router.memory_has_room(&rx.id, $signal, 0) {
                        rx.router.metrics.memory_limiter_refusals.inc();
                        return Ok(refusal_status(&Refusal::MemoryLimit).into_http());
                    }
                    let charged = grpc_admission::state(&rx.budget);
                    let req = req.map(|b| {
                        grpc_admission::ChargedBody::new(
                            b,
                            rx.budget.clone(),
                            charged.clone(),
                            rx.max_recv_bytes,
                        )
                    });
                    let req = match prepare(&rx, &charged, req).await {
                        Ok(r) => r,
                        Err(resp) => {
                            // a body cut by the admission budget is its refusal, not bad data
                            let refused = charged.lock().refused.take();
                            if let Some(m) = refused {
                                crate::receiver::refusal::record(
                                    &rx.router.metrics,
                                    &rx.id,
                                    "grpc",
                                    "admission",
                                    &m,
                                );
                                return Ok(admission_status(&m).into_http());
                            }
                            return Ok(resp);
                        }
                    };
                    // requests arrive uncompressed from `prepare`; answers may be gzipped
                    let mut send = EnabledCompressionEncodings::default();
                    send.enable(CompressionEncoding::Gzip);
                    let max = rx.max_recv_bytes;
                    let metrics = rx.router.metrics.clone();
                    let id = rx.id.clone();
                    let mut grpc = tonic::server::Grpc::new(RawCodec)
                        .apply_compression_config(EnabledCompressionEncodings::default(), send)
                        .apply_max_message_size_config(Some(max), None);
                    let mut res = grpc
                        .unary(
                            ExportSvc {
                                rx,
                                signal: $signal,
                                charged: charged.clone(),
                            },
                            req,
                        )
                        .await;
                    if too_large_is_resource_exhausted(&mut res, max) {
                        crate::receiver::refusal::record(
                            &metrics,
                            &id,
                            "grpc",
                            "too_large",
                            "request larger than max_recv_msg_size_mib",
                        );
                    }
                    crate::receiver::grpc_framing::framing_errors_are_invalid_argument(&mut res);
                    // the charge is released here, after the router took (or refused) the data
                    let refused = charged.lock().refused.take();
                    if let Some(m) = refused {
                        crate::receiver::refusal::record(&metrics, &id, "grpc", "admission", &m);
                        return Ok(admission_status(&m).into_http());
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

/// tonic reports an over-limit message as OUT_OF_RANGE; OTLP clients expect
/// RESOURCE_EXHAUSTED (not retried without RetryInfo).
/// Returns whether the answer was such a refusal.
fn too_large_is_resource_exhausted(
    res: &mut http::Response<tonic::body::Body>,
    max: usize,
) -> bool {
    let mut refused = false;
    let h = res.headers_mut();
    if h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11")
        && h.get("grpc-message").is_some_and(|m| {
            m.to_str().unwrap_or("").contains("too%20large")
                || m.to_str().unwrap_or("").contains("too large")
        })
    {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
        refused = true;
        if let Ok(v) = http::HeaderValue::from_str(
            &format!("request larger than max_recv_msg_size_mib ({} bytes)", max)
                .replace(' ', "%20"),
        ) {
            h.insert("grpc-message", v);
        }
    }
    // a corrupt gzip body is the client's fault: INVALID_ARGUMENT, not INTERNAL
    if h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"13")
        && h.get("grpc-message")
            .is_some_and(|m| m.to_str().unwrap_or("").contains("decompressing"))
    {
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    refused
}

/// The axum router serving all three services.
pub fn router(rx: GrpcReceiver) -> axum::Router {
    tonic::service::Routes::new(TraceService(rx.clone()))
        .add_service(MetricsService(rx.clone()))
        .add_service(LogsService(rx))
        .into_axum_router()
}
