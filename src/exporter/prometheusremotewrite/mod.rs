//! `prometheusremotewrite` exporter: OTLP metrics -> Prometheus remote-write 1.0 (Prometheus,
//! Mimir, Cortex, Thanos receive, ...). [`config`] holds the Collector's keys, [`sink`] the
//! [`Sender`] (translate with `crate::translate::prometheus`, split, snappy, POST, classify the
//! answer). Queueing, batching and retries are the generic exporter machinery's job.

pub mod config;
pub mod sink;

pub use config::Config;
pub use sink::PrwSender;

use crate::exporter::Sender;
use std::sync::Arc;

/// Builds the sender for one `prometheusremotewrite[/name]` exporter.
pub fn build(cfg: &Config) -> Result<Arc<dyn Sender>, String> {
    Ok(Arc::new(PrwSender::new(cfg)?))
}
