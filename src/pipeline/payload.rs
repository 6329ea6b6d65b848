//! The one canonical form of data after the receiver: encoded OTLP `Export*ServiceRequest`
//! bytes plus the signal and the item count (ARCHITECTURE.md rule 1). Cloning is a refcount bump.

use bytes::Bytes;
use std::fmt;

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
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
    pub signal: Signal,
    pub bytes: Bytes,
    pub items: u64,
}

impl Payload {
    pub fn new(signal: Signal, bytes: Bytes, items: u64) -> Self {
        Payload {
            signal,
            bytes,
            items,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
