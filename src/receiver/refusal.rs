//! Why the `otlp` receiver refuses a request, and what each refusal answers. One table maps a
//! `RefusalKind` to its OTLP/HTTP status, its OTLP/gRPC code and its retry hint
//! (`Retry-After` / `RetryInfo`); both transports answer through it, so a refusal means the
//! same thing to an HTTP client and to a gRPC client. The retryable rows follow the OTLP
//! specification, "Failures" of "OTLP/gRPC" and "OTLP/HTTP": HTTP 429/502/503/504 are
//! retryable, gRPC `UNAVAILABLE` is, and `RESOURCE_EXHAUSTED` is only with `RetryInfo`.
//!
//! Also the receiver's counters (`ReceiverCounters`): every refused request is counted in
//! `watchtower_receiver_refused_requests_total{receiver, transport, reason}`; a refusal that is
//! the client's fault (not retryable) is logged at `info` with the same fields and the answer's
//! message, while backpressure (retryable) is only counted, so an overload does not flood the
//! log. Messages never carry a credential: callers pass only their own wording.

use crate::pipeline::grpc::status_with_retry;
use crate::pipeline::payload::Signal;
use crate::pipeline::router::Refusal;
use crate::telemetry::metrics::{Metrics, ReceiverLabels, RefusedLabels};
use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tonic::Code;

/// Every reason the `otlp` receiver refuses a request, at the edge or in the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RefusalKind {
    /// No accepted credential (`protocols.*.auth`); checked before the body is read.
    Unauthenticated,
    /// An HTTP `Content-Type` other than protobuf or JSON.
    UnsupportedMediaType,
    /// A `Content-Encoding` / `grpc-encoding` the receiver does not decode.
    UnsupportedEncoding,
    /// Over `max_request_body_size` / `max_recv_msg_size_mib`, compressed or decompressed.
    TooLarge,
    /// Undecodable: bad protobuf, JSON, compression or gRPC framing, or a processor refused it.
    BadData,
    /// The body did not arrive within the listener's `read_timeout` or `min_body_rate`.
    BodyTimeout,
    /// The client gave up on its own request before the body was read (HTTP/2 `RST_STREAM`,
    /// or an HTTP/1.1 connection closed mid-body). Nobody reads the answer; it is counted so
    /// that it is not mistaken for bad data.
    ClientCancelled,
    /// Admission control (`admission.request_limit_mib`) has no room for the bytes now.
    Admission,
    /// A `memory_limiter` refused it.
    MemoryLimit,
    /// A `block` exporter's sending queue had no room within `block_timeout`.
    QueueFull,
    /// A durable queue could not write it.
    StorageUnavailable,
    /// The gateway is draining.
    ShuttingDown,
    /// No pipeline takes this signal from this receiver.
    NoPipeline,
    /// No OTLP endpoint at this HTTP path or gRPC method (counted under the receiver and
    /// transport; it names no signal).
    UnknownEndpoint,
    /// An OTLP/HTTP path asked with a method other than `POST`.
    MethodNotAllowed,
}

/// What a refusal answers on each transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The OTLP/HTTP status.
    pub(crate) http: StatusCode,
    /// The OTLP/gRPC status code.
    pub(crate) grpc: Code,
    /// `Retry-After` (HTTP, whole seconds) and `RetryInfo.retry_delay` (gRPC) for the
    /// retryable refusals; `None` tells the client not to retry.
    pub(crate) retry_after: Option<Duration>,
}

/// 499, "client closed request" (nginx's name for it; no RFC names one): the answer to a
/// request its client abandoned, which only the log and the counters see.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(s) => s,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// The delay retryable refusals ask for.
const RETRY: Option<Duration> = Some(Duration::from_secs(1));

impl RefusalKind {
    /// Every kind, in declaration order (the index of a kind's counter).
    pub(crate) const ALL: [RefusalKind; 15] = [
        RefusalKind::Unauthenticated,
        RefusalKind::UnsupportedMediaType,
        RefusalKind::UnsupportedEncoding,
        RefusalKind::TooLarge,
        RefusalKind::BadData,
        RefusalKind::BodyTimeout,
        RefusalKind::ClientCancelled,
        RefusalKind::Admission,
        RefusalKind::MemoryLimit,
        RefusalKind::QueueFull,
        RefusalKind::StorageUnavailable,
        RefusalKind::ShuttingDown,
        RefusalKind::NoPipeline,
        RefusalKind::UnknownEndpoint,
        RefusalKind::MethodNotAllowed,
    ];

    /// The table: this kind's HTTP status, gRPC code and retry hint.
    pub(crate) const fn answer(self) -> Answer {
        use RefusalKind::*;
        let (http, grpc, retry_after) = match self {
            Unauthenticated => (StatusCode::UNAUTHORIZED, Code::Unauthenticated, None),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                None,
            ),
            // gRPC over HTTP/2 "Compression": an unknown grpc-encoding is UNIMPLEMENTED,
            // answered with grpc-accept-encoding
            UnsupportedEncoding => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::Unimplemented,
                None,
            ),
            // RESOURCE_EXHAUSTED without RetryInfo: OTLP clients do not retry it
            TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, None),
            BadData => (StatusCode::BAD_REQUEST, Code::InvalidArgument, None),
            // RFC 9110 15.5.9: the server did not receive the complete request in time
            BodyTimeout => (StatusCode::REQUEST_TIMEOUT, Code::DeadlineExceeded, None),
            ClientCancelled => (CLIENT_CLOSED_REQUEST, Code::Cancelled, None),
            Admission | MemoryLimit => (
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                RETRY,
            ),
            QueueFull => (StatusCode::TOO_MANY_REQUESTS, Code::Unavailable, RETRY),
            StorageUnavailable | ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, RETRY)
            }
            NoPipeline => (StatusCode::NOT_FOUND, Code::Unimplemented, None),
            UnknownEndpoint => (StatusCode::NOT_FOUND, Code::Unimplemented, None),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented, None),
        };
        Answer {
            http,
            grpc,
            retry_after,
        }
    }

    /// Whether the client should retry (the table has a retry hint for it).
    pub(crate) const fn retryable(self) -> bool {
        self.answer().retry_after.is_some()
    }

    /// The `google.rpc.Status.code` of an OTLP/HTTP error body: the code whose HTTP mapping
    /// (`google/rpc/code.proto`) is this kind's HTTP status, so the body agrees with the status
    /// line (413 and 415, which `code.proto` does not name, are RESOURCE_EXHAUSTED and
    /// INVALID_ARGUMENT).
    pub(crate) const fn http_body_code(self) -> Code {
        match self.answer().http {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
            StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
            CLIENT_CLOSED_REQUEST => Code::Cancelled,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => {
                Code::ResourceExhausted
            }
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The `reason` label of `watchtower_receiver_refused_requests_total` (low cardinality;
    /// the router's kinds use [`Refusal::reason`]'s names).
    pub(crate) const fn reason(self) -> &'static str {
        use RefusalKind::*;
        match self {
            Unauthenticated => "unauthenticated",
            UnsupportedMediaType => "unsupported_media_type",
            UnsupportedEncoding => "unsupported_encoding",
            TooLarge => "too_large",
            BadData => "bad_data",
            BodyTimeout => "body_timeout",
            ClientCancelled => "client_cancelled",
            Admission => "admission",
            MemoryLimit => "memory_limit",
            QueueFull => "queue_full",
            StorageUnavailable => "storage_unavailable",
            ShuttingDown => "shutting_down",
            NoPipeline => "no_pipeline",
            UnknownEndpoint => "unknown_endpoint",
            MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The kind of a router refusal.
    pub(crate) const fn of(r: &Refusal) -> Self {
        match r {
            Refusal::MemoryLimit => RefusalKind::MemoryLimit,
            Refusal::QueueFull(_) => RefusalKind::QueueFull,
            Refusal::StorageUnavailable(_) => RefusalKind::StorageUnavailable,
            Refusal::ShuttingDown => RefusalKind::ShuttingDown,
            Refusal::NoPipeline(_) => RefusalKind::NoPipeline,
            Refusal::BadData(_) => RefusalKind::BadData,
        }
    }

    /// Position in [`RefusalKind::ALL`].
    const fn index(self) -> usize {
        self as usize
    }
}

/// A refused request: the row of the table that answers it and the message for the client
/// (which names the problem and never carries a credential).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub(crate) struct Refused {
    /// Which row of the table answers it.
    pub(crate) kind: RefusalKind,
    /// What was wrong, for the client and the log.
    pub(crate) message: String,
}

impl Refused {
    /// A refusal of `kind` with `message`.
    pub(crate) fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refused {
            kind,
            message: message.into(),
        }
    }

    /// The gRPC status: the table's code, with `RetryInfo` when the row has a retry hint.
    pub(crate) fn grpc_status(&self) -> tonic::Status {
        let a = self.kind.answer();
        match a.retry_after {
            Some(d) => status_with_retry(a.grpc, &self.message, d),
            None => tonic::Status::new(a.grpc, self.message.clone()),
        }
    }
}

/// The refusal for a request body that failed while it was read, from the error's chain:
/// the listener's body timeouts are [`RefusalKind::BodyTimeout`]; a client that reset its
/// HTTP/2 stream (any reason) or whose connection broke mid-body (HTTP/2, or HTTP/1.1 closed
/// before its Content-Length) is [`RefusalKind::ClientCancelled`]; anything else (a protocol
/// error in the body) is bad data. The message is the whole chain.
pub(crate) fn body_read_error(e: &(dyn std::error::Error + 'static)) -> Refused {
    use crate::listener::body::BodyTimeout;
    let mut kind = RefusalKind::BadData;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<BodyTimeout>() {
            kind = RefusalKind::BodyTimeout;
            break;
        }
        // hyper reports an HTTP/1.1 body cut short by the connection's end as an I/O error
        // (UnexpectedEof) under its own
        let cancelled = if let Some(h) = c.downcast_ref::<h2::Error>() {
            // the client reset its stream (CANCEL, or any reason it gave), or its connection
            // broke under the stream
            h.reason() == Some(h2::Reason::CANCEL) || (h.is_reset() && h.is_remote()) || h.is_io()
        } else if let Some(io) = c.downcast_ref::<std::io::Error>() {
            matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            )
        } else {
            false
        };
        if cancelled {
            kind = RefusalKind::ClientCancelled;
            break;
        }
        cur = c.source();
    }
    let mut message = format!("error reading request body: {e}");
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !message.ends_with(&part) {
            message.push_str(": ");
            message.push_str(&part);
        }
        cur = c.source();
    }
    Refused::new(kind, message)
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        let kind = RefusalKind::of(&r);
        let message = match r {
            Refusal::BadData(m) => m,
            other => other.to_string(),
        };
        Refused { kind, message }
    }
}

impl From<crate::receiver::admission::Refused> for Refused {
    fn from(e: crate::receiver::admission::Refused) -> Self {
        use crate::receiver::admission::Refused as A;
        let kind = match e {
            A::Full { .. } => RefusalKind::Admission,
            A::NeverFits { .. } => RefusalKind::TooLarge,
        };
        Refused::new(kind, e.to_string())
    }
}

impl From<crate::receiver::json::JsonError> for Refused {
    fn from(e: crate::receiver::json::JsonError) -> Self {
        Refused::new(RefusalKind::BadData, e.to_string())
    }
}

/// One receiver's counters on one transport. Each series is resolved from its family once, on
/// first use (so the exposition lists only series that happened, as before), and then
/// incremented without building or hashing a label set.
pub(crate) struct ReceiverCounters {
    metrics: Arc<Metrics>,
    labels: ReceiverLabels,
    /// `otelcol_receiver_accepted_{spans,metric_points,log_records}`, by [`Signal`]
    accepted: [OnceLock<Counter>; 3],
    /// `otelcol_receiver_refused_*`, by [`Signal`]
    refused_items: [OnceLock<Counter>; 3],
    /// `watchtower_receiver_refused_requests`, by [`RefusalKind::index`]
    refused: [OnceLock<Counter>; RefusalKind::ALL.len()],
}

impl ReceiverCounters {
    /// The counters of receiver `receiver` (its config id, e.g. `otlp`) on `transport`
    /// (`grpc` or `http`).
    pub(crate) fn new(metrics: Arc<Metrics>, receiver: &str, transport: &str) -> Self {
        ReceiverCounters {
            metrics,
            labels: ReceiverLabels {
                receiver: receiver.to_string(),
                transport: transport.to_string(),
            },
            accepted: Default::default(),
            refused_items: Default::default(),
            refused: Default::default(),
        }
    }

    /// [`ReceiverCounters::new`], shared by the clones of a receiver's state.
    pub(crate) fn shared(metrics: &Arc<Metrics>, receiver: &str, transport: &str) -> Arc<Self> {
        Arc::new(ReceiverCounters::new(metrics.clone(), receiver, transport))
    }

    /// Counts `items` (spans, data points or log records) accepted by the router.
    pub(crate) fn accepted(&self, signal: Signal, items: u64) {
        if items > 0 {
            self.accepted[signal as usize]
                .get_or_init(|| self.metrics.receiver_accepted.counter(signal, &self.labels))
                .inc_by(items);
        }
    }

    /// Counts the `items` of a request the router refused (`otelcol_receiver_refused_*`).
    pub(crate) fn refused_items(&self, signal: Signal, items: u64) {
        if items > 0 {
            self.refused_items[signal as usize]
                .get_or_init(|| self.metrics.receiver_refused.counter(signal, &self.labels))
                .inc_by(items);
        }
    }

    /// Counts one refused request under its reason, and logs it at `info` unless it is
    /// backpressure (retryable) or the client's own cancellation.
    pub(crate) fn refused(&self, r: &Refused) {
        let kind = r.kind;
        self.refused[kind.index()]
            .get_or_init(|| {
                self.metrics
                    .receiver_refused_reason
                    .get_or_create(&RefusedLabels {
                        receiver: self.labels.receiver.clone(),
                        transport: self.labels.transport.clone(),
                        reason: kind.reason().into(),
                    })
                    .clone()
            })
            .inc();
        if !kind.retryable() && kind != RefusalKind::ClientCancelled {
            tracing::info!(
                receiver = self.labels.receiver.as_str(),
                transport = self.labels.transport.as_str(),
                reason = kind.reason(),
                message = r.message.as_str(),
                "request refused"
            );
        }
    }
}

/// Counts a request as [`RefusalKind::ClientCancelled`] when it is dropped before
/// [`CancelGuard::done`]. When an HTTP/2 client resets its stream, hyper drops the request's
/// handler where it waits for the body, so the handler never sees an error it could count.
pub(crate) struct CancelGuard<'a> {
    counters: &'a ReceiverCounters,
    armed: bool,
}

impl CancelGuard<'_> {
    /// The body was read (or refused and counted as such): nothing to count on drop.
    pub(crate) fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.counters.refused(&Refused::new(
                RefusalKind::ClientCancelled,
                "the client cancelled the request while its body was being read",
            ));
        }
    }
}

impl ReceiverCounters {
    /// A [`CancelGuard`] for one request's body read.
    pub(crate) fn cancel_guard(&self) -> CancelGuard<'_> {
        CancelGuard {
            counters: self,
            armed: true,
        }
    }
}

#[cfg(test)]
mod tests;
