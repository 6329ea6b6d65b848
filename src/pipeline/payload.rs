//! The one canonical form of data after the receiver: encoded OTLP `Export*ServiceRequest`
//! bytes plus the signal and the item count (ARCHITECTURE.md rule 1). Cloning is a refcount bump.

use bytes::Bytes;
use std::fmt;

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans (`ExportTraceServiceRequest`).
    Traces,
    /// Metric data points (`ExportMetricsServiceRequest`).
    Metrics,
    /// Log records (`ExportLogsServiceRequest`).
    Logs,
}

impl Signal {
    /// Every signal, in index order (`signal as usize` indexes per-signal arrays).
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// Pipeline-name form: `traces`, `metrics`, `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// Suffix of the Collector's self-metric names: `spans`, `metric_points`, `log_records`.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }

    /// The signal named `traces`, `metrics` or `logs`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Signal> {
        match s {
            "traces" => Some(Signal::Traces),
            "metrics" => Some(Signal::Metrics),
            "logs" => Some(Signal::Logs),
            _ => None,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An encoded OTLP export request (`ExportTraceServiceRequest` etc.) with its item count
/// (spans, metric data points or log records). Two payloads of one signal concatenate into a
/// valid payload: the request message has a single repeated field.
#[derive(Clone, Debug)]
pub struct Payload {
    /// Which request message `bytes` holds.
    pub signal: Signal,
    /// The encoded request (protobuf).
    pub bytes: Bytes,
    /// Spans, metric data points or log records in it.
    pub items: u64,
}

impl Payload {
    /// A payload of `items` items; `bytes` must already be a valid request of `signal`.
    pub fn new(signal: Signal, bytes: Bytes, items: u64) -> Self {
        Payload {
            signal,
            bytes,
            items,
        }
    }

    /// Encoded size, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the encoding is empty (a request with no resources).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
