//! `exporters: loki[/name]` settings, in the Collector's spelling plus Loki's mapping knobs.

use crate::config::common::{BasicAuth, ClientTls, Dur, Headers, QueueSettings, RetrySettings};
use crate::translate::loki::{DefaultLabels, Format, Options, labels};
use serde::Deserialize;
use std::time::Duration;

/// Default request timeout (the Collector's HTTP client default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `exporters: loki[/name]` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Full push URL, e.g. `http://loki:3100/loki/api/v1/push`.
    pub endpoint: String,
    /// Extra headers, e.g. `X-Scope-OrgID` (the tenant: one per exporter, so a request never
    /// mixes tenants).
    #[serde(default)]
    #[serde(deserialize_with = "crate::config::common::headers")]
    pub headers: Headers,
    /// HTTP Basic credentials sent with every push.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `Authorization: Bearer <token>` with every push.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Per-request timeout; default 30 s ([`DEFAULT_TIMEOUT`]).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Client TLS for an `https` endpoint.
    #[serde(default)]
    pub tls: ClientTls,
    /// The exporter's queue.
    #[serde(default)]
    pub sending_queue: QueueSettings,
    /// Retries of failed pushes.
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// `json` format only: which default labels to add.
    #[serde(default)]
    pub default_labels_enabled: DefaultLabelsEnabled,
    /// `otlp` format: resource attributes promoted to stream labels. Default: Loki's list.
    #[serde(default)]
    pub index_labels: Option<Vec<String>>,
    /// The mapping of a log record to a Loki entry; default `otlp`.
    #[serde(default)]
    pub format: LokiFormat,
}

/// `format:` `otlp` (Loki native OTLP mapping) or `json` (lokiexporter style).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LokiFormat {
    /// Loki's native OTLP mapping.
    #[default]
    Otlp,
    /// The contrib lokiexporter's JSON line format.
    Json,
}

/// `default_labels_enabled: { exporter, job, instance, level }`, each default `true`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultLabelsEnabled {
    /// `exporter="OTLP"`.
    pub exporter: bool,
    /// `job` from `service.namespace`/`service.name`.
    pub job: bool,
    /// `instance` from `service.instance.id`.
    pub instance: bool,
    /// `level` from the record's severity.
    pub level: bool,
}

impl Default for DefaultLabelsEnabled {
    fn default() -> Self {
        DefaultLabelsEnabled {
            exporter: true,
            job: true,
            instance: true,
            level: true,
        }
    }
}

impl Config {
    /// The per-request timeout: `timeout`, else [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Checks what serde cannot and returns the translation options. Warnings (not errors,
    /// Loki's limits are per tenant) are returned for the caller to log.
    pub fn validate(&self) -> Result<(Options, Vec<String>), String> {
        let url = self.endpoint.trim();
        let shown = crate::telemetry::redact::url(url);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "loki: endpoint {shown:?} must be an http:// or https:// URL (e.g. http://loki:3100/loki/api/v1/push)"
            ));
        }
        if self.basic_auth.is_some() && self.bearer_token.is_some() {
            return Err("loki: set either basic_auth or bearer_token, not both".into());
        }
        let index_labels: Vec<String> = match &self.index_labels {
            Some(list) => list.clone(),
            None => labels::DEFAULT_INDEX_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        if let Some(bad) = index_labels.iter().find(|n| n.trim().is_empty()) {
            return Err(format!(
                "loki: index_labels contains an empty name ({bad:?})"
            ));
        }
        let mut warnings = Vec::new();
        if !url.ends_with("/loki/api/v1/push") {
            warnings.push(format!(
                "loki: endpoint {shown:?} does not end with /loki/api/v1/push"
            ));
        }
        if self.index_labels.is_some() && index_labels.len() + 1 > labels::LOKI_MAX_LABEL_NAMES {
            warnings.push(format!(
                "loki: {} index_labels (+ service_name) can exceed Loki's default limit of {} label names per stream; streams over the limit are refused with HTTP 400",
                index_labels.len(),
                labels::LOKI_MAX_LABEL_NAMES
            ));
        }
        let d = self.default_labels_enabled;
        Ok((
            Options {
                format: match self.format {
                    LokiFormat::Otlp => Format::Otlp,
                    LokiFormat::Json => Format::Json,
                },
                index_labels,
                default_labels: DefaultLabels {
                    exporter: d.exporter,
                    job: d.job,
                    instance: d.instance,
                    level: d.level,
                },
            },
            warnings,
        ))
    }
}
