//! `loki` exporter: OTLP logs -> Loki push API (snappy-compressed `logproto.PushRequest`).
//! [`config`] holds the YAML keys, `sink` the [`Sender`]: decode the batch, translate with
//! `crate::translate::loki`, compress, POST, classify Loki's answer. Queueing, batching and
//! retries are the generic exporter machinery's job.

pub mod config;
pub(crate) mod sink;

pub use config::{Config, DefaultLabelsEnabled, LokiFormat};

use crate::exporter::Sender;
use std::sync::Arc;

/// Builds the sender from its config (called by the config loader).
pub fn build(cfg: &Config) -> Result<Arc<dyn Sender>, String> {
    Ok(Arc::new(sink::LokiSink::new(cfg)?))
}
