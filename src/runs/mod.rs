//! Test runs and the CD quality gate (docs/runs.md). A CD pipeline opens a run over the control API
//! (`POST /runs` on the health endpoint); while it is open the router stamps
//! `test.run.id` on matching data before fan-out ([`stamp`]); the `runsummary` exporter
//! ([`exporter`]) aggregates each run's data into a bounded [`summary::Summary`]
//! held by the [`registry::Registry`] (persisted by [`persist`]); `watchtower gate`
//! ([`gate`], [`client`]) compares a run with a baseline and exits 0/1/2.

pub mod api;
pub mod client;
pub mod exporter;
pub mod fingerprint;
pub mod gate;
pub mod persist;
pub mod registry;
pub mod sketch;
pub mod stamp;
pub mod summary;

use crate::config::common::Dur;
use serde::Deserialize;

pub use registry::Registry;

/// The `runs` extension:
/// ```yaml
/// extensions:
///   runs: { max_duration: 2h, directory: /var/lib/watchtower/runs, max_groups: 1000 }
/// service:
///   extensions: [health_check, runs]
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// A run left open is ended (state `expired`) after this long.
    pub max_duration: Dur,
    /// Where summaries are saved (and reloaded at start); none = memory only. May point into
    /// the `file_storage` extension's directory.
    pub directory: Option<String>,
    /// Cap on exception groups and, separately, on error-log groups per run.
    pub max_groups: usize,
    /// Cap on span names (operations) per service per run.
    pub max_operations: usize,
    /// Runs kept (open and ended); the oldest ended run is forgotten first.
    pub max_runs: usize,
    /// How often changed summaries are saved to `directory`.
    pub flush_interval: Dur,
    /// `POST /runs/{id}/end` waits up to this long for the runsummary queue to drain.
    pub end_drain_timeout: Dur,
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            max_duration: Dur::secs(2 * 3600),
            directory: None,
            max_groups: 1000,
            max_operations: 200,
            max_runs: 100,
            flush_interval: Dur::secs(5),
            end_drain_timeout: Dur::secs(5),
        }
    }
}

impl RunsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_duration.0.is_zero() {
            return Err("max_duration must be positive".into());
        }
        if self.max_groups == 0 || self.max_operations == 0 || self.max_runs == 0 {
            return Err("max_groups, max_operations and max_runs must be positive".into());
        }
        if self.flush_interval.0.is_zero() {
            return Err("flush_interval must be positive".into());
        }
        Ok(())
    }
}

/// Errors of the runs API and registry.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunsError {
    #[error("run {0:?} not found")]
    NotFound(String),
    #[error("run {0:?} already exists")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("too many runs are open (max_runs {0})")]
    TooMany(usize),
}
