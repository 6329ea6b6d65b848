//! Test runs and the CD quality gate (docs/runs.md). A CD pipeline opens a run over the control API
//! (`POST /runs` on the health endpoint); while it is open the router stamps
//! `test.run.id` on matching data before fan-out (`stamp`); the `runsummary` exporter
//! (`exporter`) aggregates each run's data into a bounded `summary::Summary`
//! held by the [`registry::Registry`] (persisted by `persist`); `watchtower gate`
//! (`gate`, [`client`]) compares a run with a baseline and exits 0/1/2.

pub(crate) mod api;
pub mod client;
pub(crate) mod exporter;
pub(crate) mod fingerprint;
pub(crate) mod gate;
pub(crate) mod limits;
pub(crate) mod matcher;
pub(crate) mod peers;
pub(crate) mod persist;
pub mod registry;
pub(crate) mod replicas;
pub(crate) mod sketch;
pub(crate) mod stamp;
pub(crate) mod summary;

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
    /// Most runs that `test.run.id` values in one batch of data may open (source
    /// `attribute`); resources beyond it are not summarized.
    pub max_new_runs_per_request: usize,
    /// The other replicas of a gateway tier, whose runs API calls are fanned out to and
    /// merged: `host:port` of their health_check endpoint, `dns+name:port` (every A/AAAA
    /// record of a Kubernetes headless Service) or `dnssrv+name` (every SRV record's targets
    /// at its port, e.g. `dnssrv+_health._tcp.<service>.<namespace>.svc.cluster.local`). May
    /// include this replica itself. Empty
    /// entries are ignored (so `["${env:PEERS:-}"]` means none when the variable is unset).
    #[serde(deserialize_with = "peer_list")]
    pub peers: Vec<String>,
    /// Connect and answer timeout of one peer call (run-end adds `end_drain_timeout`).
    pub peer_timeout: Dur,
    /// `auth: { authenticator: <extension id> }` protects the runs API (`/runs...` on the
    /// health_check endpoint); health itself stays open.
    pub auth: Option<crate::extension::auth::AuthRef>,
    /// `peer_auth: { authenticator: <extension id> }`: the client authenticator whose
    /// credential calls to `peers` carry. Default: `auth`'s extension when it can send a
    /// credential (`bearertokenauth`, `basicauth` with `client_auth`); with `auth` and `peers`
    /// set and neither able to send one, the gateway does not start.
    pub peer_auth: Option<crate::extension::auth::AuthRef>,
}

/// `peers`: a list of strings where empty and null entries are dropped.
fn peer_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw: Option<Vec<Option<String>>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
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
            max_new_runs_per_request: 4,
            peers: Vec::new(),
            peer_timeout: Dur::secs(2),
            auth: None,
            peer_auth: None,
        }
    }
}

impl RunsConfig {
    /// Checks the settings serde cannot: durations and bounds must be positive, peer entries
    /// well formed.
    ///
    /// # Errors
    /// A message naming the first bad setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_duration.0.is_zero() {
            return Err("max_duration must be positive".into());
        }
        if self.max_groups == 0
            || self.max_operations == 0
            || self.max_runs == 0
            || self.max_new_runs_per_request == 0
        {
            return Err(
                "max_groups, max_operations, max_runs and max_new_runs_per_request must be positive"
                    .into(),
            );
        }
        if self.peer_timeout.0.is_zero() {
            return Err("peer_timeout must be positive".into());
        }
        crate::runs::peers::Peers::check_entries(&self.peers)?;
        if self.peer_auth.is_some() && self.auth.is_none() {
            return Err(
                "peer_auth is set without auth: a replica that sends the tier's credential to its peers must ask for one too (set auth), or anyone reaching it reaches the tier's protected runs API"
                    .into(),
            );
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
    /// No run with this id (HTTP 404).
    #[error("run {0:?} not found")]
    NotFound(String),
    /// A run with this id already exists (HTTP 409).
    #[error("run {0:?} already exists")]
    Conflict(String),
    /// A bad request: id, query parameter, body or duration (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// `max_runs` runs are already open (HTTP 429).
    #[error("too many runs are open (max_runs {0})")]
    TooMany(usize),
    /// This replica is stopping and hands its own parts to its peers: it takes no other
    /// replica's part (HTTP 503).
    #[error("this replica is stopping")]
    Stopping,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_auth_needs_auth_so_a_replica_is_no_open_door_into_the_tier() {
        let open: RunsConfig = serde_yaml::from_str(
            "peers: [\"10.0.0.1:13133\"]\npeer_auth: { authenticator: bearertokenauth/runs }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = open.validate().expect_err("peer_auth without auth");
        assert!(e.contains("peer_auth is set without auth"), "{e}");
        let closed: RunsConfig = serde_yaml::from_str(
            "peers: [\"10.0.0.1:13133\"]\nauth: { authenticator: bearertokenauth/runs }\npeer_auth: { authenticator: bearertokenauth/runs }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(closed.validate(), Ok(()));
    }

    #[test]
    fn peers_drop_empty_entries_and_must_be_host_port() {
        let c: RunsConfig = serde_yaml::from_str(
            "peers: [\"10.0.0.1:13133\", null, \"\", \"dns+wt-headless:13133\"]",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.peers, vec!["10.0.0.1:13133", "dns+wt-headless:13133"]);
        assert!(c.validate().is_ok());
        let bad: RunsConfig =
            serde_yaml::from_str("peers: [\"wt-headless\"]").unwrap_or_else(|e| panic!("{e}"));
        assert!(bad.validate().is_err_and(|e| e.contains("wt-headless")));
        let none: RunsConfig = serde_yaml::from_str("peers:").unwrap_or_else(|e| panic!("{e}"));
        assert!(none.peers.is_empty());
    }
}
