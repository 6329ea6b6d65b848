//! Test runs and the CD quality gate (issue 8). A CD pipeline opens a run over the control API
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

/// The registry a config asks for: when the `runs` extension is enabled in
/// `service.extensions`, or a `runsummary` exporter is in a pipeline (then with defaults).
pub fn registry_for(
    cfg: &crate::config::Config,
    metrics: &std::sync::Arc<crate::telemetry::metrics::Metrics>,
) -> Result<Option<std::sync::Arc<Registry>>, String> {
    use crate::config::{ExporterConfig, ExtensionConfig};
    let ext = cfg
        .service
        .extensions
        .iter()
        .find_map(|id| match cfg.extensions.get(id) {
            Some(ExtensionConfig::Runs(c)) => Some(c.clone()),
            _ => None,
        });
    let summary_used = cfg
        .service
        .pipelines
        .values()
        .flat_map(|p| p.exporters.iter())
        .any(|e| matches!(cfg.exporters.get(e), Some(ExporterConfig::RunSummary(_))));
    match ext {
        Some(c) => Registry::new(c, Some(metrics.clone())).map(Some),
        None if summary_used => {
            Registry::new(RunsConfig::default(), Some(metrics.clone())).map(Some)
        }
        None => Ok(None),
    }
    .map_err(|e| format!("extensions.runs: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::config::{ExporterConfig, ExtensionConfig, parse};

    const BASE: &str = "receivers: { otlp: { protocols: { http: {} } } }\n";

    #[test]
    fn config_runs_extension_and_runsummary_exporter() {
        let text = format!(
            "{BASE}exporters: {{ runsummary: {{ sending_queue: {{ queue_size: 5 }} }} }}\nextensions: {{ runs: {{ max_duration: 30m, directory: /tmp/x, max_groups: 10 }} }}\nservice: {{ extensions: [runs], pipelines: {{ traces: {{ receivers: [otlp], exporters: [runsummary] }} }} }}\n"
        );
        let cfg = parse(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        match cfg.extensions.get("runs") {
            Some(ExtensionConfig::Runs(r)) => {
                assert_eq!(r.max_groups, 10);
                assert_eq!(r.max_duration.0.as_secs(), 1800);
            }
            other => panic!("{other:?}"),
        }
        match cfg.exporters.get("runsummary") {
            Some(ExporterConfig::RunSummary(c)) => {
                assert_eq!(c.sending_queue.queue_size, 5);
                assert_eq!(
                    c.sending_queue.policy(),
                    crate::config::common::FullPolicy::DropNewest
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runsummary_refuses_block_and_unknown_keys() {
        for bad in [
            "exporters: { runsummary: { sending_queue: { full_policy: block } } }\n",
            "exporters: { runsummary: { nope: 1 } }\n",
            "exporters: { runsummary: {} }\nextensions: { runs: { max_groups: 0 } }\n",
        ] {
            let text = format!(
                "{BASE}{bad}service: {{ pipelines: {{ traces: {{ receivers: [otlp], exporters: [runsummary] }} }} }}\n"
            );
            assert!(parse(&text, &|_| None).is_err(), "{bad}");
        }
    }
}
