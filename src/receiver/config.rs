//! `otlp` receiver settings, in the Collector's keys.

use crate::config::common::{ByteSize, Dur, ServerTls};
use crate::extension::auth::AuthRef;
use crate::listener::config::{HttpServerKeys, KeepaliveServerConfig, defaults};
use serde::{Deserialize, Deserializer};

/// A present-but-empty section (`grpc:`) means "enabled with defaults", as in the Collector.
fn null_as_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// `receivers.otlp` (the Collector's `otlpreceiver` `Config`): the transports to serve and
/// the admission budget they share.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `protocols`: which transports are served; at least one must be present.
    #[serde(default)]
    pub protocols: Protocols,
    /// Byte budget for request bodies in flight (see `receiver::admission`).
    #[serde(default)]
    pub admission: crate::receiver::admission::AdmissionConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
/// `protocols`: a present section enables its transport (an empty `grpc:` means the
/// defaults); an absent one is not served.
pub struct Protocols {
    /// `protocols.grpc`: OTLP/gRPC (default endpoint `0.0.0.0:4317`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub grpc: Option<GrpcConfig>,
    /// `protocols.http`: OTLP/HTTP, protobuf and JSON (default endpoint `0.0.0.0:4318`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub http: Option<HttpConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `protocols.grpc`, configgrpc's `ServerConfig` keys.
pub struct GrpcConfig {
    /// `host:port` to listen on (default `0.0.0.0:4317`).
    pub endpoint: String,
    /// Largest message accepted, in MiB, after decompression (default 4, as the Collector);
    /// a larger one is refused with RESOURCE_EXHAUSTED without `RetryInfo`.
    pub max_recv_msg_size_mib: u64,
    /// HTTP/2 streams per connection (default: the listener's 100).
    pub max_concurrent_streams: Option<u32>,
    /// Server TLS (`cert_file`, `key_file`, optional `client_ca_file`); plaintext when absent.
    pub tls: Option<ServerTls>,
    /// configgrpc's `keepalive` (docs/listeners.md).
    pub keepalive: Option<KeepaliveServerConfig>,
    /// Open connections on this listener (docs/listeners.md).
    pub max_connections: usize,
    /// `auth: { authenticator: <extension id> }`: requests without an accepted credential
    /// get UNAUTHENTICATED.
    pub auth: Option<AuthRef>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "0.0.0.0:4317".into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: None,
            tls: None,
            keepalive: None,
            max_connections: defaults::max_connections(),
            auth: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
/// `protocols.http.cors`, confighttp's `CORSConfig`: browsers may send from these origins.
pub struct Cors {
    /// Origins allowed (`*` wildcards as in the Collector); empty means CORS off.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond the CORS-safelisted ones.
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Max-Age`, seconds a preflight answer may be cached.
    pub max_age: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `protocols.http`, confighttp's `ServerConfig` keys plus the OTLP URL paths.
pub struct HttpConfig {
    /// `host:port` to listen on (default `0.0.0.0:4318`).
    pub endpoint: String,
    /// Limit on the decompressed body (20 MiB by default, as the Collector).
    pub max_request_body_size: ByteSize,
    /// Cross-origin settings for browser clients; none when absent.
    pub cors: Option<Cors>,
    /// Server TLS (`cert_file`, `key_file`, optional `client_ca_file`); plaintext when absent.
    pub tls: Option<ServerTls>,
    /// Path of trace exports (default `/v1/traces`, OTLP/HTTP "Request").
    pub traces_url_path: String,
    /// Path of metric exports (default `/v1/metrics`).
    pub metrics_url_path: String,
    /// Path of log exports (default `/v1/logs`).
    pub logs_url_path: String,
    /// confighttp's timeouts and Watchtower's `min_body_rate` / `max_connections`
    /// (docs/listeners.md).
    pub read_header_timeout: Dur,
    /// Time to read a whole request, headers and body (default 0: off; `min_body_rate`
    /// bounds slow bodies instead).
    pub read_timeout: Dur,
    /// Time a response write may stall before the connection is closed (default 30 s).
    pub write_timeout: Dur,
    /// Time a keep-alive connection may sit idle between requests (default 1 m).
    pub idle_timeout: Dur,
    /// Slowest request body accepted, bytes per second (default 1 KiB/s).
    pub min_body_rate: ByteSize,
    /// Open connections on this listener (default 4096); the longest-idle one is closed first.
    pub max_connections: usize,
    /// Age after which a connection is closed once its request in flight is answered (HTTP/1:
    /// `Connection: close`; HTTP/2: GOAWAY), so keep-alive clients reconnect through the
    /// Service and reach replicas added by a scale-up (default 0: off; the gRPC receiver's
    /// `keepalive.server_parameters.max_connection_age`, for OTLP/HTTP). Jittered by +-10%.
    pub max_connection_age: Dur,
    /// `auth: { authenticator: <extension id> }`: requests without an accepted credential
    /// get 401 with `WWW-Authenticate`.
    pub auth: Option<AuthRef>,
}

impl HttpConfig {
    /// The listener keys of this section.
    pub fn server_keys(&self) -> HttpServerKeys {
        HttpServerKeys {
            read_header_timeout: self.read_header_timeout,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            idle_timeout: self.idle_timeout,
            min_body_rate: self.min_body_rate,
            max_connections: self.max_connections,
            max_connection_age: self.max_connection_age,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: ByteSize(20 << 20),
            cors: None,
            tls: None,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            read_header_timeout: defaults::read_header_timeout(),
            read_timeout: Dur::default(),
            write_timeout: defaults::write_timeout(),
            idle_timeout: defaults::idle_timeout(),
            min_body_rate: defaults::min_body_rate(),
            max_connections: defaults::max_connections(),
            max_connection_age: Dur::default(),
            auth: None,
        }
    }
}

/// The largest `admission.request_limit_mib` / `waiting_limit_mib`: 1 TiB.
pub const MAX_ADMISSION_MIB: u64 = 1 << 20;

impl OtlpConfig {
    /// Checks the settings together: at least one transport, positive limits, `max_connections`
    /// in range, and no body limit above `admission.request_limit_mib` (such a request could
    /// never be admitted). The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        // byte counts are MiB << 20 in a usize (and a semaphore's permits): 1 TiB at most
        for (key, mib) in [
            ("request_limit_mib", self.admission.request_limit_mib),
            ("waiting_limit_mib", self.admission.waiting_limit_mib),
        ] {
            if mib > MAX_ADMISSION_MIB {
                return Err(format!(
                    "admission.{key} ({mib}) is above {MAX_ADMISSION_MIB} (1 TiB)"
                ));
            }
        }
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            return Err(
                "at least one of protocols.grpc or protocols.http must be configured".into(),
            );
        }
        if let Some(g) = &self.protocols.grpc {
            if g.max_recv_msg_size_mib == 0 {
                return Err("protocols.grpc.max_recv_msg_size_mib must be positive".into());
            }
            crate::listener::config::check_max_connections(g.max_connections)
                .map_err(|e| format!("protocols.grpc.{e}"))?;
            let limit = self.admission.request_limit_mib;
            if limit > 0 && g.max_recv_msg_size_mib > limit {
                return Err(format!(
                    "protocols.grpc.max_recv_msg_size_mib ({}) is above admission.request_limit_mib ({limit}): such a message could never be admitted",
                    g.max_recv_msg_size_mib
                ));
            }
        }
        if let Some(h) = &self.protocols.http {
            for p in [&h.traces_url_path, &h.metrics_url_path, &h.logs_url_path] {
                if !p.starts_with('/') {
                    return Err(format!("protocols.http url path {p:?} must start with /"));
                }
            }
            if h.max_request_body_size.0 == 0 {
                return Err("protocols.http.max_request_body_size must be positive".into());
            }
            crate::listener::config::check_max_connections(h.max_connections)
                .map_err(|e| format!("protocols.http.{e}"))?;
            let limit = self.admission.request_limit_mib << 20;
            if limit > 0 && h.max_request_body_size.0 > limit {
                return Err(format!(
                    "protocols.http.max_request_body_size ({} bytes) is above admission.request_limit_mib ({} MiB): such a request could never be admitted",
                    h.max_request_body_size.0, self.admission.request_limit_mib
                ));
            }
        }
        Ok(())
    }
}

/// `host:port` with a numeric port (host may be empty, a name or an IP).
pub fn check_endpoint(ep: &str) -> Result<(), String> {
    let (_, port) = ep
        .rsplit_once(':')
        .ok_or_else(|| format!("{ep:?} must be host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{ep:?} has an invalid port"))?;
    Ok(())
}
