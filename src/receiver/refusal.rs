//! Why a receiver refuses a request, and what each refusal answers: one table from a
//! [`RefusalKind`] to its HTTP status, gRPC code and retry hint, used by both transports of
//! the `otlp` receiver (OTLP spec "Failures" for OTLP/HTTP and OTLP/gRPC: retryable refusals
//! carry `Retry-After` / `RetryInfo`; ARCHITECTURE.md rule 4). Also the receiver's refusal
//! and acceptance counters, resolved once per receiver and transport instead of per request.

use crate::pipeline::grpc::status_with_retry;
use crate::pipeline::payload::Signal;
use crate::pipeline::router::Refusal;
use crate::telemetry::metrics::{Metrics, ReceiverLabels, RefusedLabels};
use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use thiserror::Error;

/// Every reason a request is refused, at the edge or by the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The `memory_limiter` refused it (retryable).
    MemoryLimit,
    /// A `block` exporter's queue had no room within `block_timeout` (retryable).
    QueueFull,
    /// A durable queue could not write it (retryable).
    StorageUnavailable,
    /// The gateway is draining (retryable).
    ShuttingDown,
    /// No pipeline takes this signal from this receiver.
    NoPipeline,
    /// Invalid protobuf / JSON / compression.
    BadData,
    /// Over `max_request_body_size` / `max_recv_msg_size_mib` (decompressed too).
    TooLarge,
    /// A `Content-Type` or `Content-Encoding` the receiver does not take.
    UnsupportedMediaType,
}

/// What a refusal answers on each transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// OTLP/HTTP status.
    pub http: StatusCode,
    /// OTLP/gRPC status code.
    pub grpc: tonic::Code,
    /// `Retry-After` (HTTP) and `RetryInfo` (gRPC) for retryable refusals.
    pub retry_after: Option<Duration>,
}

const RETRY: Option<Duration> = Some(Duration::from_secs(1));

impl RefusalKind {
    /// Every kind, for tests and for resolving counters.
    pub const ALL: [RefusalKind; 8] = [
        RefusalKind::MemoryLimit,
        RefusalKind::QueueFull,
        RefusalKind::StorageUnavailable,
        RefusalKind::ShuttingDown,
        RefusalKind::NoPipeline,
        RefusalKind::BadData,
        RefusalKind::TooLarge,
        RefusalKind::UnsupportedMediaType,
    ];

    /// The table.
    pub const fn answer(self) -> Answer {
        use RefusalKind::*;
        use tonic::Code;
        let (http, grpc, retry_after) = match self {
            MemoryLimit => (
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                RETRY,
            ),
            QueueFull => (StatusCode::TOO_MANY_REQUESTS, Code::Unavailable, RETRY),
            StorageUnavailable => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, RETRY),
            ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, RETRY),
            NoPipeline => (StatusCode::NOT_FOUND, Code::Unimplemented, None),
            BadData => (StatusCode::BAD_REQUEST, Code::InvalidArgument, None),
            // RESOURCE_EXHAUSTED without RetryInfo: OTLP clients do not retry it
            TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, None),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                None,
            ),
        };
        Answer {
            http,
            grpc,
            retry_after,
        }
    }

    /// Low-cardinality `reason` label of `watchtower_receiver_refused_requests_total`.
    pub const fn reason(self) -> &'static str {
        use RefusalKind::*;
        match self {
            MemoryLimit => "memory_limit",
            QueueFull => "queue_full",
            StorageUnavailable => "storage_unavailable",
            ShuttingDown => "shutting_down",
            NoPipeline => "no_pipeline",
            BadData => "bad_data",
            TooLarge => "too_large",
            UnsupportedMediaType => "unsupported_media_type",
        }
    }

    /// The kind of a router refusal.
    pub const fn of(r: &Refusal) -> Self {
        match r {
            Refusal::MemoryLimit => RefusalKind::MemoryLimit,
            Refusal::QueueFull(_) => RefusalKind::QueueFull,
            Refusal::StorageUnavailable(_) => RefusalKind::StorageUnavailable,
            Refusal::ShuttingDown => RefusalKind::ShuttingDown,
            Refusal::NoPipeline(_) => RefusalKind::NoPipeline,
            Refusal::BadData(_) => RefusalKind::BadData,
        }
    }
}

/// A refused request: its kind and the message for the client.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Refused {
    /// Which row of the table answers it.
    pub kind: RefusalKind,
    /// Human detail naming the problem.
    pub message: String,
}

impl Refused {
    /// A refusal of `kind` with `message`.
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refused {
            kind,
            message: message.into(),
        }
    }

    /// The gRPC status: the table's code, with `RetryInfo` when retryable.
    pub fn grpc_status(&self) -> tonic::Status {
        let a = self.kind.answer();
        match a.retry_after {
            Some(d) => status_with_retry(a.grpc, &self.message, d),
            None => tonic::Status::new(a.grpc, self.message.clone()),
        }
    }
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

/// One receiver's counters on one transport, each resolved on first use and then
/// incremented without building a label set.
pub struct ReceiverCounters {
    metrics: Arc<Metrics>,
    labels: ReceiverLabels,
    accepted: [OnceLock<Counter>; 3],
    refused_items: [OnceLock<Counter>; 3],
    refused: [OnceLock<Counter>; RefusalKind::ALL.len()],
}

impl ReceiverCounters {
    /// The counters of receiver `id` (e.g. `otlp`) on `transport` (`grpc` or `http`).
    pub fn new(metrics: Arc<Metrics>, id: &str, transport: &str) -> Self {
        ReceiverCounters {
            metrics,
            labels: ReceiverLabels {
                receiver: id.to_string(),
                transport: transport.to_string(),
            },
            accepted: Default::default(),
            refused_items: Default::default(),
            refused: Default::default(),
        }
    }

    /// Counts `items` accepted (`otelcol_receiver_accepted_*`).
    pub fn accepted(&self, signal: Signal, items: u64) {
        if items > 0 {
            self.accepted[signal as usize]
                .get_or_init(|| self.metrics.receiver_accepted.counter(signal, &self.labels))
                .inc_by(items);
        }
    }

    /// Counts one refused request by reason, and its `items` (`otelcol_receiver_refused_*`;
    /// zero when the request was refused before its items were counted).
    pub fn refused(&self, kind: RefusalKind, signal: Signal, items: u64) {
        if items > 0 {
            self.refused_items[signal as usize]
                .get_or_init(|| self.metrics.receiver_refused.counter(signal, &self.labels))
                .inc_by(items);
        }
        let i = RefusalKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.refused[i]
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_refusals_carry_a_hint_on_both_transports_and_the_rest_do_not() {
        for kind in RefusalKind::ALL {
            let a = kind.answer();
            let retryable = matches!(
                kind,
                RefusalKind::MemoryLimit
                    | RefusalKind::QueueFull
                    | RefusalKind::StorageUnavailable
                    | RefusalKind::ShuttingDown
            );
            assert_eq!(a.retry_after.is_some(), retryable, "{kind:?}");
            let st = Refused::new(kind, "m").grpc_status();
            assert_eq!(st.code(), a.grpc);
            assert_eq!(
                crate::pipeline::grpc::retry_delay(&st),
                a.retry_after,
                "{kind:?}"
            );
            // OTLP/HTTP: retryable refusals are 429 or 503, the others 4xx
            assert_eq!(matches!(a.http.as_u16(), 429 | 503), retryable, "{kind:?}");
        }
    }

    #[test]
    fn router_refusals_map_onto_the_table_with_their_reason() {
        let cases = [
            (
                Refusal::MemoryLimit,
                "memory_limit",
                429,
                tonic::Code::ResourceExhausted,
            ),
            (
                Refusal::QueueFull("a".into()),
                "queue_full",
                429,
                tonic::Code::Unavailable,
            ),
            (
                Refusal::StorageUnavailable("a".into()),
                "storage_unavailable",
                503,
                tonic::Code::Unavailable,
            ),
            (
                Refusal::ShuttingDown,
                "shutting_down",
                503,
                tonic::Code::Unavailable,
            ),
            (
                Refusal::NoPipeline(Signal::Logs),
                "no_pipeline",
                404,
                tonic::Code::Unimplemented,
            ),
            (
                Refusal::BadData("x".into()),
                "bad_data",
                400,
                tonic::Code::InvalidArgument,
            ),
        ];
        for (r, reason, http, grpc) in cases {
            assert_eq!(r.reason(), reason);
            let kind = RefusalKind::of(&r);
            assert_eq!(kind.reason(), reason);
            assert_eq!(kind.answer().http.as_u16(), http);
            assert_eq!(kind.answer().grpc, grpc);
            assert_eq!(kind.answer().retry_after.is_some(), r.retryable());
        }
        assert_eq!(
            Refused::from(Refusal::BadData("field 3".into())).message,
            "field 3"
        );
    }

    #[test]
    fn counters_are_the_registered_series() {
        let m = Arc::new(Metrics::new());
        let c = ReceiverCounters::new(m.clone(), "otlp", "http");
        c.accepted(Signal::Traces, 5);
        c.accepted(Signal::Traces, 2);
        c.refused(RefusalKind::QueueFull, Signal::Logs, 3);
        c.refused(RefusalKind::BadData, Signal::Logs, 0);
        let l = ReceiverLabels {
            receiver: "otlp".into(),
            transport: "http".into(),
        };
        assert_eq!(m.receiver_accepted.get(Signal::Traces, &l), 7);
        assert_eq!(m.receiver_refused.get(Signal::Logs, &l), 3);
        let text = m.encode();
        assert!(text.contains("reason=\"queue_full\""), "{text}");
        assert!(text.contains("reason=\"bad_data\""), "{text}");
    }
}
