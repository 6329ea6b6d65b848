//! `prometheusremotewrite` exporter: OTLP metrics -> Prometheus remote-write 1.0.
//! (Being built: issue 3.)

use crate::config::common::{Dur, QueueSettings, RetrySettings};
use crate::exporter::Sender;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub endpoint: String,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

pub fn build(_cfg: &Config) -> Result<Arc<dyn Sender>, String> {
    Err("prometheusremotewrite is not built yet".into())
}
