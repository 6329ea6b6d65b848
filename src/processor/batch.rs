//! `batch` processor config. Batching happens per destination (in each exporter's worker),
//! not as a shared stage, so one slow destination never holds another's batch.

use crate::config::common::Dur;
use crate::exporter::worker::BatchSettings;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub timeout: Dur,
    pub send_batch_size: u64,
    pub send_batch_max_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Dur::millis(200),
            send_batch_size: 8192,
            send_batch_max_size: 0,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err("send_batch_max_size must be greater or equal to send_batch_size".into());
        }
        Ok(())
    }

    pub fn settings(&self) -> BatchSettings {
        BatchSettings {
            timeout: self.timeout.0,
            send_batch_size: self.send_batch_size.max(1),
            send_batch_max_size: self.send_batch_max_size,
        }
    }
}
