//! Listener settings in the Collector's key names (confighttp's `read_header_timeout`,
//! `read_timeout`, `write_timeout`, `idle_timeout`; configgrpc's `max_concurrent_streams` and
//! `keepalive.server_parameters` / `keepalive.enforcement_policy`), plus Watchtower's
//! `max_connections` and `min_body_rate`, resolved into one [`ListenerSettings`] per listener.
//!
//! A duration of `0` turns the limit off, as in the Collector.

use crate::config::common::{ByteSize, Dur};
use serde::Deserialize;
use std::time::Duration;

/// confighttp's default `read_header_timeout` (1 minute).
pub const DEFAULT_READ_HEADER_TIMEOUT: Dur = Dur::secs(60);
/// confighttp's default `write_timeout` (30 seconds).
pub const DEFAULT_WRITE_TIMEOUT: Dur = Dur::secs(30);
/// confighttp's default `idle_timeout` (1 minute).
pub const DEFAULT_IDLE_TIMEOUT: Dur = Dur::secs(60);
/// Default `max_connections` of an OTLP listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default `max_connections` of the health_check and self-metrics listeners.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 256;
/// Default `min_body_rate`: 1 KiB/s, checked over [`BODY_RATE_WINDOW`].
pub const DEFAULT_MIN_BODY_RATE: ByteSize = ByteSize(1024);
/// The window over which `min_body_rate` is measured.
pub const BODY_RATE_WINDOW: Duration = Duration::from_secs(10);
/// Default HTTP/2 `max_concurrent_streams` (per connection).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default gRPC `keepalive.server_parameters.max_connection_idle` (5 minutes).
pub const DEFAULT_MAX_CONNECTION_IDLE: Dur = Dur::secs(300);
/// Default gRPC `max_connection_age_grace` once `max_connection_age` is set (30 seconds).
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE: Dur = Dur::secs(30);
/// grpc-go's default keepalive `time` (2 hours): an HTTP/2 PING after this long without
/// activity.
pub const DEFAULT_KEEPALIVE_TIME: Dur = Dur::secs(7200);
/// grpc-go's default keepalive `timeout` (20 seconds) to answer a PING.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Dur = Dur::secs(20);
/// HTTP/2 PING interval on the HTTP listeners (they have no `keepalive` key).
pub const HTTP_KEEPALIVE_TIME: Dur = Dur::secs(60);

/// configgrpc's `keepalive` section of a gRPC server.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerConfig {
    pub server_parameters: KeepaliveServerParameters,
    /// Accepted for compatibility; not enforced (see docs/listeners.md).
    pub enforcement_policy: Option<KeepaliveEnforcementPolicy>,
}

/// grpc-go's `keepalive.ServerParameters`, in the Collector's keys. Unset takes Watchtower's
/// default (docs/listeners.md); `0` turns a limit off.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerParameters {
    /// Close (GOAWAY) a connection without a request for this long.
    pub max_connection_idle: Option<Dur>,
    /// Close (GOAWAY) a connection this old (with +-10% jitter), so clients reconnect and
    /// spread over replicas.
    pub max_connection_age: Option<Dur>,
    /// After the GOAWAY for age, how long open requests may still finish.
    pub max_connection_age_grace: Option<Dur>,
    /// HTTP/2 PING after this long without activity.
    pub time: Option<Dur>,
    /// Close the connection when a PING is not answered within this.
    pub timeout: Option<Dur>,
}

/// grpc-go's `keepalive.EnforcementPolicy` (accepted, not enforced: the HTTP/2 stack answers
/// every PING).
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveEnforcementPolicy {
    pub min_time: Option<Dur>,
    pub permit_without_stream: bool,
}

/// Every timeout and limit of one listener, resolved (`None` = off).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerSettings {
    /// Name in logs and the `listener` metric label (`otlp/grpc`, `health_check`, ...).
    pub name: String,
    /// HTTP/1 request head must arrive within this (also bounds a kept-alive HTTP/1
    /// connection waiting for its next request).
    pub read_header_timeout: Option<Duration>,
    /// A request body must be received within this from the start of the request.
    pub read_timeout: Option<Duration>,
    /// Minimum body rate in bytes/s over [`BODY_RATE_WINDOW`] (0 = off).
    pub min_body_rate: u64,
    /// A write to the client that makes no progress for this long closes the connection.
    pub write_timeout: Option<Duration>,
    /// A connection without an open request for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Option<Duration>,
    /// Connections older than this (+-10% jitter) are closed gracefully (GOAWAY).
    pub max_connection_age: Option<Duration>,
    /// How long requests may finish after a graceful close for age or idleness.
    pub max_connection_age_grace: Duration,
    /// HTTP/2 PING interval and answer timeout.
    pub keepalive_time: Option<Duration>,
    pub keepalive_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Open connections; at the cap the longest-idle connection is closed for a new one, or
    /// the new one is refused when none is idle.
    pub max_connections: usize,
}

/// `0` means off.
pub fn opt(d: Dur) -> Option<Duration> {
    (!d.0.is_zero()).then_some(d.0)
}

impl ListenerSettings {
    /// Built-in settings for an HTTP listener (confighttp's defaults).
    pub fn http_defaults(name: &str, max_connections: usize) -> Self {
        ListenerSettings {
            name: name.to_string(),
            read_header_timeout: opt(DEFAULT_READ_HEADER_TIMEOUT),
            read_timeout: None,
            min_body_rate: DEFAULT_MIN_BODY_RATE.0,
            write_timeout: opt(DEFAULT_WRITE_TIMEOUT),
            idle_timeout: opt(DEFAULT_IDLE_TIMEOUT),
            max_connection_age: None,
            max_connection_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE.0,
            keepalive_time: opt(HTTP_KEEPALIVE_TIME),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT.0,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections,
        }
    }

    /// An HTTP listener from confighttp-style keys.
    pub fn http(name: &str, keys: &HttpServerKeys) -> Self {
        ListenerSettings {
            read_header_timeout: opt(keys.read_header_timeout),
            read_timeout: opt(keys.read_timeout),
            min_body_rate: keys.min_body_rate.0,
            write_timeout: opt(keys.write_timeout),
            idle_timeout: opt(keys.idle_timeout),
            max_connection_age: opt(keys.max_connection_age),
            ..Self::http_defaults(name, keys.max_connections)
        }
    }

    /// A gRPC listener from configgrpc-style keys.
    pub fn grpc(
        name: &str,
        keepalive: Option<&KeepaliveServerConfig>,
        max_concurrent_streams: Option<u32>,
        max_connections: usize,
    ) -> Self {
        let p = keepalive
            .map(|k| k.server_parameters.clone())
            .unwrap_or_default();
        ListenerSettings {
            name: name.to_string(),
            read_header_timeout: opt(DEFAULT_READ_HEADER_TIMEOUT),
            read_timeout: None,
            min_body_rate: DEFAULT_MIN_BODY_RATE.0,
            write_timeout: opt(DEFAULT_WRITE_TIMEOUT),
            idle_timeout: opt(p.max_connection_idle.unwrap_or(DEFAULT_MAX_CONNECTION_IDLE)),
            max_connection_age: p.max_connection_age.and_then(opt),
            max_connection_age_grace: p
                .max_connection_age_grace
                .unwrap_or(DEFAULT_MAX_CONNECTION_AGE_GRACE)
                .0,
            keepalive_time: opt(p.time.unwrap_or(DEFAULT_KEEPALIVE_TIME)),
            keepalive_timeout: p.timeout.unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT).0,
            max_concurrent_streams: max_concurrent_streams
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
            max_connections,
        }
    }
}

/// The confighttp keys a listener section carries (copied out of the receiver or extension
/// config so this module does not depend on them).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpServerKeys {
    pub read_header_timeout: Dur,
    pub read_timeout: Dur,
    pub write_timeout: Dur,
    pub idle_timeout: Dur,
    pub min_body_rate: ByteSize,
    pub max_connections: usize,
    /// 0: off (the health_check extension has none).
    pub max_connection_age: Dur,
}

/// serde default helpers for config structs that carry these keys.
pub mod defaults {
    use super::*;
    pub fn read_header_timeout() -> Dur {
        DEFAULT_READ_HEADER_TIMEOUT
    }
    pub fn write_timeout() -> Dur {
        DEFAULT_WRITE_TIMEOUT
    }
    pub fn idle_timeout() -> Dur {
        DEFAULT_IDLE_TIMEOUT
    }
    pub fn min_body_rate() -> ByteSize {
        DEFAULT_MIN_BODY_RATE
    }
    pub fn max_connections() -> usize {
        DEFAULT_MAX_CONNECTIONS
    }
    pub fn admin_max_connections() -> usize {
        DEFAULT_ADMIN_MAX_CONNECTIONS
    }
}

/// Logs that `keepalive.enforcement_policy` is accepted but not enforced.
pub fn warn_unenforced(receiver: &str, k: Option<&KeepaliveServerConfig>) {
    if k.is_some_and(|k| k.enforcement_policy.is_some()) {
        tracing::warn!(
            receiver,
            "protocols.grpc.keepalive.enforcement_policy is accepted but not enforced: every client PING is answered"
        );
    }
}

/// Checks the values that have no meaning: a zero connection cap.
pub fn check_max_connections(n: usize) -> Result<(), String> {
    if n == 0 {
        return Err("max_connections must be positive".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_keepalive_keys_override_defaults_and_zero_turns_off() {
        let k: KeepaliveServerConfig = serde_yaml::from_str(
            "server_parameters: { max_connection_idle: 0, max_connection_age: 30s, time: 10s }",
        )
        .unwrap();
        let s = ListenerSettings::grpc("otlp/grpc", Some(&k), Some(7), 10);
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.max_connection_age, Some(Duration::from_secs(30)));
        assert_eq!(s.max_connection_age_grace, Duration::from_secs(30));
        assert_eq!(s.keepalive_time, Some(Duration::from_secs(10)));
        assert_eq!(s.max_concurrent_streams, 7);
        let d = ListenerSettings::grpc("otlp/grpc", None, None, 10);
        assert_eq!(d.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(d.max_connection_age, None);
        assert_eq!(d.max_concurrent_streams, DEFAULT_MAX_CONCURRENT_STREAMS);
    }

    #[test]
    fn unknown_keepalive_key_is_an_error() {
        let e = serde_yaml::from_str::<KeepaliveServerConfig>(
            "server_parameters: { max_conection_age: 30s }",
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_conection_age"), "{e}");
    }
}
