//! `loki` exporter: OTLP logs -> Loki push API.
//! (Being built: issue 4.)

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
    Err("loki is not built yet".into())
}
