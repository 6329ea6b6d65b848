//! Exporters: the destinations. Every exporter is a [`Sender`] (the protocol part: encode,
//! send, classify the answer) wrapped by the same machinery in [`worker`]: its own bounded
//! queue, batcher, workers, retry with backoff and self-metrics (ARCHITECTURE.md rule 3). A new
//! destination only implements `Sender`.

pub(crate) mod debug;
pub(crate) mod helper;
pub(crate) mod http;
pub mod loki;
pub mod otlp;
pub(crate) mod otlphttp;
pub mod prometheusremotewrite;
pub(crate) mod retry;
pub(crate) mod retry_budget;
pub mod worker;

use crate::pipeline::payload::Payload;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The future a [`Sender`] returns.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<SendOk, SendError>> + Send>>;

/// The protocol half of an exporter. `send` gets one batch (a concatenation of encoded OTLP
/// export requests of one signal) and reports what the destination did with it. It is called
/// by the exporter's own workers, never by a receiver, and may be called concurrently.
pub trait Sender: Send + Sync + 'static {
    fn send(&self, batch: Payload) -> SendFuture;
}

/// A batch the destination accepted. `dropped` lists items that were accepted by the call but
/// not written, with a low-cardinality reason (OTLP partial success, delta temporality refused
/// by the remote-write translator, ...). They are counted, never retried.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SendOk {
    pub dropped: Vec<(String, u64)>,
}

impl SendOk {
    pub fn all() -> Self {
        SendOk::default()
    }
}

/// A failed send. `retryable` decides between retry with backoff and dropping the batch.
/// `reason` is a low-cardinality label for metrics (`http_503`, `out_of_order`, `timeout`);
/// `message` is the human detail for logs.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    pub reason: String,
    pub message: String,
}

impl SendError {
    pub fn retryable(reason: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            retryable: true,
            retry_after: None,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            retryable: false,
            retry_after: None,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}
