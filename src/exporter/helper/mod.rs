//! The exporter helper: the layers every destination's [`crate::exporter::Sender`] is wrapped
//! in, composed as the Collector's `exporterhelper` composes its senders (ARCHITECTURE.md
//! rules 3-7). From the queue outwards:
//!
//! - [`consumer`]: a queue consumer (one of `num_consumers` workers) that pops records and
//!   reports them done;
//! - [`batcher`]: grows a batch from queued records of one signal;
//! - [`retry_sender`]: backoff, jitter, `Retry-After` / `RetryInfo`, the retry budget,
//!   `max_elapsed_time` and shutdown;
//! - [`obs`]: the self-metrics of all of the above.
//!
//! [`crate::exporter::worker::Exporter`] assembles them with the exporter's queue.

pub mod batcher;
pub mod consumer;
pub mod obs;
pub mod retry_sender;

#[cfg(test)]
mod tests;
