//! The `runsummary` exporter: sits in pipelines like any destination and aggregates each
//! batch into its run's summary (via the [`Registry`]). It uses the shared worker
//! machinery (own bounded queue, workers, metrics) but its queue can only drop, never block,
//! so it can never slow the data path; whatever it drops is reported in the summaries.
//!
//! ```yaml
//! exporters:
//!   runsummary:
//!     sending_queue: { queue_size: 1000, max_bytes: 64MiB, num_consumers: 1, full_policy: drop_newest }
//! ```

use crate::config::common::{ByteSize, FullPolicy, QueueSettings, RetrySettings};
use crate::exporter::{SendError, SendFuture, SendOk, Sender};
use crate::pipeline::payload::Payload;
use crate::runs::Registry;
use serde::Deserialize;
use std::sync::Arc;

/// The queue policies `runsummary` allows (no `block`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    #[default]
    DropNewest,
    DropOldest,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub queue_size: usize,
    pub max_bytes: ByteSize,
    pub num_consumers: usize,
    pub full_policy: DropPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            queue_size: 1000,
            max_bytes: ByteSize(64 * 1024 * 1024),
            num_consumers: 1,
            full_policy: DropPolicy::DropNewest,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    sending_queue: QueueConfig,
}

/// `runsummary` exporter settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(from = "Raw")]
pub struct Config {
    pub sending_queue: QueueSettings,
    /// aggregation never fails retryably: retries are off
    pub retry_on_failure: RetrySettings,
}

impl From<Raw> for Config {
    fn from(r: Raw) -> Self {
        let q = r.sending_queue;
        Config {
            sending_queue: QueueSettings {
                queue_size: q.queue_size,
                max_bytes: q.max_bytes,
                num_consumers: q.num_consumers,
                full_policy: match q.full_policy {
                    DropPolicy::DropNewest => FullPolicy::DropNewest,
                    DropPolicy::DropOldest => FullPolicy::DropOldest,
                },
                ..QueueSettings::default()
            },
            retry_on_failure: RetrySettings {
                enabled: false,
                ..RetrySettings::default()
            },
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Raw::default().into()
    }
}

struct RunSummarySender {
    registry: Arc<Registry>,
}

impl Sender for RunSummarySender {
    fn send(&self, batch: Payload) -> SendFuture {
        let reg = self.registry.clone();
        Box::pin(async move {
            reg.ingest(&batch)
                .map(|()| SendOk::all())
                .map_err(|e| SendError::permanent("decode", format!("cannot decode batch: {e}")))
        })
    }
}

/// The sender for a running gateway.
pub fn build(registry: Arc<Registry>) -> Arc<dyn Sender> {
    Arc::new(RunSummarySender { registry })
}

/// A sender with a detached in-memory registry (for `validate`, which only checks building).
pub fn build_detached() -> Result<Arc<dyn Sender>, String> {
    Ok(build(Registry::new(Default::default(), None)?))
}
