//! Exporters: the destinations. Every exporter is a [`Sender`] (the protocol part: encode,
//! send, classify the answer) wrapped by the same machinery in [`worker`]: its own bounded
//! queue, batcher, workers, retry with backoff and self-metrics (ARCHITECTURE.md rule 3). A new
//! destination only implements `Sender`.

pub(crate) mod debug;
pub(crate) mod grpc_unary;
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

/// The largest export response an OTLP exporter reads (grpc-go's and tonic's default receive
/// limit, 4 MiB); an `Export*ServiceResponse` is a few bytes, and a destination's answer must
/// not grow memory without a bound.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The most characters of a destination's own text (an error body, `grpc-message`, a partial
/// success's `error_message`) kept for logs and errors.
pub const MAX_BACKEND_TEXT: usize = 1024;

/// A destination's text made safe to log: at most [`MAX_BACKEND_TEXT`] characters (the rest
/// named by its length), control characters (line breaks, terminal escapes) written as
/// escapes, so an answer can neither forge log lines nor flood the log.
pub fn backend_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_BACKEND_TEXT));
    let mut chars = s.char_indices();
    for (_, c) in chars.by_ref().take(MAX_BACKEND_TEXT) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if let Some((at, _)) = chars.next() {
        out.push_str(&format!("... ({} more bytes)", s.len() - at));
    }
    out
}

/// The future a [`Sender`] returns.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<SendOk, SendError>> + Send>>;

/// The protocol half of an exporter. `send` gets one batch (a concatenation of encoded OTLP
/// export requests of one signal) and reports what the destination did with it. It is called
/// by the exporter's own workers, never by a receiver, and may be called concurrently.
pub trait Sender: Send + Sync + 'static {
    /// Sends one batch. `Ok` once the destination accepted it (whole or with counted drops);
    /// `Err` with the retry decision otherwise.
    fn send(&self, batch: Payload) -> SendFuture;
}

/// A batch the destination accepted. `dropped` lists items that were accepted by the call but
/// not written, with a low-cardinality reason (OTLP partial success, delta temporality refused
/// by the remote-write translator, ...). They are counted, never retried.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SendOk {
    /// (reason, items) accepted but not written.
    pub dropped: Vec<(String, u64)>,
    /// What the destination said about them (OTLP `partial_success.error_message`), logged
    /// at `warn` with the exporter's name, as the Collector's otlp exporters do.
    pub message: Option<String>,
}

impl SendOk {
    /// Every item written.
    pub fn all() -> Self {
        SendOk::default()
    }

    /// The answer to an OTLP export whose response carried `p`: its rejected items dropped
    /// under `partial_success`, its message kept when it rejected any or said something.
    pub fn partial(p: otlp::PartialSuccess) -> Self {
        SendOk {
            dropped: if p.rejected > 0 {
                vec![("partial_success".into(), p.rejected)]
            } else {
                vec![]
            },
            message: (p.rejected > 0 || !p.message.is_empty()).then_some(p.message),
        }
    }
}

/// A failed send. `retryable` decides between retry with backoff and dropping the batch.
/// `reason` is a low-cardinality label for metrics (`http_503`, `out_of_order`, `timeout`);
/// `message` is the human detail for logs.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    /// True: retry with backoff; false: drop the batch, counted. Which answers are retryable
    /// is per protocol (OTLP/HTTP: 429, 502, 503, 504 as the OTLP specification's "Failures"
    /// section says; remote-write and Loki: 429 and every 5xx; transport errors and timeouts
    /// always).
    pub retryable: bool,
    /// The wait the destination asked for (`Retry-After`, gRPC `RetryInfo`); it counts as one
    /// backoff step, honoured up to `retry_on_failure.max_interval`.
    pub retry_after: Option<Duration>,
    /// Low-cardinality label for the failure metrics, e.g. `http_503`.
    pub reason: String,
    /// Human-readable detail for logs.
    pub message: String,
}

impl SendError {
    /// A failure worth retrying.
    pub fn retryable(reason: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            retryable: true,
            retry_after: None,
            reason: reason.into(),
            message: backend_text(&message.into()),
        }
    }

    /// A failure that retrying cannot fix: the batch is dropped and counted.
    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            retryable: false,
            retry_after: None,
            reason: reason.into(),
            message: backend_text(&message.into()),
        }
    }

    /// The same error with the destination's requested wait.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_text_escapes_control_characters_and_is_bounded() {
        assert_eq!(
            backend_text("bad\n2026 ERROR forged\u{1b}[31m\ttab"),
            "bad\\n2026 ERROR forged\\u{1b}[31m\\ttab"
        );
        let long = "é".repeat(3000);
        let t = backend_text(&long);
        assert!(t.starts_with(&"é".repeat(MAX_BACKEND_TEXT)), "{t}");
        assert!(t.ends_with("... (3952 more bytes)"), "{t}");
        assert_eq!(backend_text("fine"), "fine");
        // the errors built from a destination's text are made safe the same way
        let e = SendError::permanent("http_400", "a\nb");
        assert_eq!(e.message, "a\\nb");
    }
}
