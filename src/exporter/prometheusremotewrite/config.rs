//! The exporter's configuration, in the Collector's `prometheusremotewrite` spelling, plus
//! `basic_auth` / `bearer_token` (Collector users attach an auth extension; Watchtower takes
//! these two keys directly).

use crate::config::common::{BasicAuth, ClientTls, Dur, Headers, QueueSettings, RetrySettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default request budget, as in the Collector (3 MB).
pub const DEFAULT_MAX_BATCH_SIZE_BYTES: usize = 3_000_000;
/// Default HTTP timeout, as in the Collector.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `{ enabled: bool }` blocks.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    /// Whether the feature is on.
    pub enabled: bool,
}

/// `prometheusremotewrite[/name]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http(s)://host:port/api/v1/write` (Prometheus) or `/api/v1/push` (Mimir).
    pub endpoint: String,
    /// Extra headers (e.g. `X-Scope-OrgID`); cannot override the remote-write headers.
    #[serde(default)]
    #[serde(deserialize_with = "crate::config::common::headers")]
    pub headers: Headers,
    /// Prefix of every metric name.
    #[serde(default)]
    pub namespace: String,
    /// Labels added to every series that does not have them.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Copy all resource attributes onto every series (default off).
    #[serde(default)]
    pub resource_to_telemetry_conversion: Option<Enabled>,
    /// `target_info` series per resource (default on).
    #[serde(default)]
    pub target_info: Option<Enabled>,
    /// Unit, `_total` and `_ratio` suffixes (default on).
    #[serde(default = "yes")]
    pub add_metric_suffixes: bool,
    /// Send `TYPE` / `HELP` / `UNIT` metadata (default off).
    #[serde(default)]
    pub send_metadata: bool,
    /// Upper bound of one uncompressed remote-write request (default 3000000).
    #[serde(default)]
    pub max_batch_size_bytes: Option<usize>,
    /// HTTP request timeout (default 5s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Client TLS for an `https` endpoint.
    #[serde(default)]
    pub tls: ClientTls,
    /// HTTP Basic credentials (not together with `bearer_token`).
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Like every exporter's, except that `num_consumers` defaults to 1: concurrent sends
    /// reorder samples of a series and Prometheus/Mimir refuse the older ones as out of order
    /// (collector#2315). Set it higher only with out-of-order ingestion enabled.
    #[serde(default = "ordered_queue", deserialize_with = "ordered_queue_de")]
    pub sending_queue: QueueSettings,
    /// Retries of failed requests (429, 5xx, connection errors and timeouts).
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn yes() -> bool {
    true
}

impl Config {
    /// The HTTP request timeout: `timeout`, else [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Largest uncompressed request, in bytes: `max_batch_size_bytes`, else
    /// [`DEFAULT_MAX_BATCH_SIZE_BYTES`].
    pub fn max_batch_size_bytes(&self) -> usize {
        self.max_batch_size_bytes
            .unwrap_or(DEFAULT_MAX_BATCH_SIZE_BYTES)
    }

    /// Whether `target_info` series are written (default true).
    pub fn target_info_enabled(&self) -> bool {
        self.target_info.as_ref().is_none_or(|t| t.enabled)
    }

    /// Whether resource attributes are copied onto every series (default false).
    pub fn resource_to_telemetry_enabled(&self) -> bool {
        self.resource_to_telemetry_conversion
            .as_ref()
            .is_some_and(|t| t.enabled)
    }

    /// Checks what serde cannot: endpoint scheme, batch size, auth exclusivity.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!(
                "endpoint {:?} must start with http:// or https://",
                crate::telemetry::redact::url(&self.endpoint)
            ));
        }
        if self.max_batch_size_bytes == Some(0) {
            return Err("max_batch_size_bytes must be greater than 0".into());
        }
        if self.basic_auth.is_some() && self.bearer_token.is_some() {
            return Err("set either basic_auth or bearer_token, not both".into());
        }
        Ok(())
    }
}

/// The remote-write queue default: one consumer, so batches reach the backend in order.
fn ordered_queue() -> QueueSettings {
    QueueSettings {
        num_consumers: 1,
        ..QueueSettings::default()
    }
}

fn ordered_queue_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<QueueSettings, D::Error> {
    let mut v = serde_yaml::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(ordered_queue());
    }
    if let serde_yaml::Value::Mapping(m) = &mut v {
        let key = serde_yaml::Value::String("num_consumers".into());
        if !m.contains_key(&key) {
            m.insert(key, serde_yaml::Value::Number(1.into()));
        }
    }
    // the key path inside sending_queue is kept in the message (`queue_size: invalid value`)
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        serde::de::Error::custom(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_keys_parse() {
        let y = r#"
endpoint: http://mimir:8080/api/v1/push
headers: { X-Scope-OrgID: qa }
namespace: qa
external_labels: { cluster: c1 }
resource_to_telemetry_conversion: { enabled: true }
target_info: { enabled: false }
add_metric_suffixes: false
send_metadata: true
max_batch_size_bytes: 1000
timeout: 2s
tls: { insecure_skip_verify: true }
basic_auth: { username: u, password: p }
sending_queue: { num_consumers: 2 }
retry_on_failure: { initial_interval: 100ms }
"#;
        let c: Config = serde_yaml::from_str(y).unwrap();
        assert!(c.resource_to_telemetry_enabled());
        assert!(!c.target_info_enabled());
        assert!(!c.add_metric_suffixes);
        assert_eq!(c.max_batch_size_bytes(), 1000);
        assert_eq!(c.timeout(), Duration::from_secs(2));
        assert_eq!(c.sending_queue.num_consumers, 2);
        let d: Config = serde_yaml::from_str(
            "endpoint: http://p/api/v1/write\nsending_queue: { queue_size: 10 }\n",
        )
        .unwrap();
        assert_eq!(
            (d.sending_queue.num_consumers, d.sending_queue.queue_size),
            (1, 10),
            "one consumer unless set"
        );
        let e: Config = serde_yaml::from_str("endpoint: http://p/api/v1/write\n").unwrap();
        assert_eq!(e.sending_queue.num_consumers, 1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: Config = serde_yaml::from_str("endpoint: http://p/api/v1/write").unwrap();
        assert!(c.target_info_enabled());
        assert!(!c.resource_to_telemetry_enabled());
        assert!(c.add_metric_suffixes);
        assert!(!c.send_metadata);
        assert_eq!(c.max_batch_size_bytes(), DEFAULT_MAX_BATCH_SIZE_BYTES);
        assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
        let e = serde_yaml::from_str::<Config>("endpoint: http://p\nwal: {}").unwrap_err();
        assert!(e.to_string().contains("wal"), "{e}");
        let c: Config = serde_yaml::from_str("endpoint: p:9090").unwrap();
        assert!(c.validate().is_err());
        // a bad key inside sending_queue is named
        let e =
            serde_yaml::from_str::<Config>("endpoint: http://p\nsending_queue: { queue_size: -1 }")
                .unwrap_err();
        assert!(e.to_string().contains("queue_size: invalid value"), "{e}");
    }
}
