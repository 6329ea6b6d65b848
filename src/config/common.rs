//! Setting types shared by many components, in the OpenTelemetry Collector's spelling:
//! durations (`5s`, `250ms`), byte sizes (`64MiB`), `sending_queue`, `retry_on_failure`,
//! client and server TLS, basic/bearer auth.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A duration written as `250ms`, `5s`, `1m30s`, `2h` (or an integer number of nanoseconds,
/// as the Collector accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// `s` seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

/// Parses `1h2m3s`, `250ms`, `1.5s`, `100us`, `10ns`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {s:?} is missing a unit (ns, us, ms, s, m, h)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in duration {s:?} (use ns, us, ms, s, m, h)"
                ));
            }
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || !(0.0..=1e12).contains(&total) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 5s or 250ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|n| Dur(Duration::from_nanos(n)))
                    .map_err(|_| E::custom("duration must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size: an integer number of bytes, or `512KiB`, `64MiB`, `1GiB`, `10MB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

/// Parses a byte size: a plain integer (bytes) or a number with a unit, `KB`/`MB`/`GB` (powers
/// of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024). Returns bytes.
///
/// # Errors
/// A message naming the text when the number or the unit is not recognised (a size above
/// `u64::MAX` bytes saturates).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..split]
        .parse()
        .map_err(|_| format!("invalid byte size {s:?}"))?;
    let mult: f64 = match s[split..].trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "unknown unit {u:?} in byte size {s:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    Ok((n * mult) as u64)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size such as 1048576 or 64MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a full queue does with a new request (ARCHITECTURE.md rule 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Wait a short bounded time, then refuse the request with a retryable status.
    #[default]
    Block,
    /// Drop the new request, counted.
    DropNewest,
    /// Drop the oldest queued batches to make room, counted.
    DropOldest,
}

/// `sending_queue`: the exporter's bounded queue and its consumers.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// `false`: the queue holds one request and one consumer sends it (the Collector's
    /// synchronous mode). Default `true`.
    pub enabled: bool,
    /// Maximum number of queued requests (the Collector's unit).
    pub queue_size: usize,
    /// Byte bound of the queue (encoded OTLP bytes, in flight included).
    pub max_bytes: ByteSize,
    /// Workers sending from this queue at once; default 4.
    pub num_consumers: usize,
    /// What a full queue does with a new request; default `block`.
    pub full_policy: FullPolicy,
    /// The Collector's switch; `true` is the same as `full_policy: block`.
    pub block_on_overflow: Option<bool>,
    /// How long a `block` enqueue waits for room before refusing.
    pub block_timeout: Dur,
    /// `file_storage[/name]`: a durable queue (see the file_storage extension).
    pub storage: Option<String>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            queue_size: 1000,
            max_bytes: ByteSize(64 * 1024 * 1024),
            num_consumers: 4,
            full_policy: FullPolicy::Block,
            block_on_overflow: None,
            block_timeout: Dur::millis(200),
            storage: None,
        }
    }
}

impl QueueSettings {
    /// The effective policy, folding in the Collector's `block_on_overflow` alias.
    pub fn policy(&self) -> FullPolicy {
        match self.block_on_overflow {
            Some(true) => FullPolicy::Block,
            _ => self.full_policy,
        }
    }
}

/// `retry_on_failure`: exponential backoff with jitter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// `false`: a failed send is not retried. Default `true`.
    pub enabled: bool,
    /// Wait before the first retry; default 5 s.
    pub initial_interval: Dur,
    /// Longest wait between retries (a server's Retry-After is honoured up to it); default 30 s.
    pub max_interval: Dur,
    /// Give up after this long (0 = never give up).
    pub max_elapsed_time: Dur,
    /// Growth of the wait per attempt (at least 1, checked when the config loads); default 1.5.
    pub multiplier: f64,
    /// Jitter: each wait is drawn from `wait x (1 +/- factor)`, factor clamped to 0..=1;
    /// default 0.5.
    pub randomization_factor: f64,
    /// Caps retries to a fraction of recent successes (see `exporter::retry_budget`).
    pub retry_budget: RetryBudgetSettings,
}

/// `retry_on_failure.retry_budget`: retries allowed = `ratio` per successful send plus
/// `min_per_second`, with a burst of `max(10, 10 * min_per_second)`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetSettings {
    /// `false`: retries are not capped. Default `true`.
    pub enabled: bool,
    /// Retries allowed per successful send; default 0.1.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the success count; default 1.
    pub min_per_second: f64,
}

impl Default for RetryBudgetSettings {
    fn default() -> Self {
        RetryBudgetSettings {
            enabled: true,
            ratio: 0.1,
            min_per_second: 1.0,
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Dur::secs(5),
            max_interval: Dur::secs(30),
            max_elapsed_time: Dur::secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
            retry_budget: RetryBudgetSettings::default(),
        }
    }
}

/// Client TLS for https destinations. The system roots are trusted; `ca_file` adds to them.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTls {
    /// gRPC (`otlp`): a `host:port` endpoint is plaintext instead of TLS.
    pub insecure: bool,
    /// Accept any server certificate (HTTP exporters only; for testing).
    pub insecure_skip_verify: bool,
    /// PEM file of CA certificates trusted for the server (added to the system roots).
    pub ca_file: Option<String>,
    /// Client certificate (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<String>,
    /// Private key (PEM) of `cert_file`.
    pub key_file: Option<String>,
    /// gRPC (`otlp`): the name checked against the server's certificate (and sent as SNI)
    /// instead of the endpoint's host.
    pub server_name_override: Option<String>,
}

/// Server TLS for receivers and the admin endpoint.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// Server certificate chain (PEM file).
    pub cert_file: String,
    /// Private key (PEM file) of `cert_file`.
    pub key_file: String,
    /// CA bundle (PEM) for mutual TLS: when set, clients must present a certificate that
    /// chains to it, or the handshake fails.
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

/// Basic authentication for HTTP destinations.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name sent in the `Authorization: Basic` header.
    #[serde(deserialize_with = "text")]
    pub username: String,
    /// Password sent with `username`; default empty.
    #[serde(default, deserialize_with = "text")]
    pub password: String,
}

/// Request compression of a destination (`compression:` of `otlp` and `otlphttp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (the default, as in the Collector).
    #[default]
    Gzip,
    /// Sent uncompressed.
    None,
    /// Zstandard.
    Zstd,
    /// Snappy: a block over HTTP (as the Collector's `snappy`), the framing format over gRPC.
    Snappy,
    /// The zlib format, named `deflate` on the wire (HTTP and gRPC).
    Deflate,
}

impl Compression {
    /// The body codec, `None` for `none`.
    pub fn codec(self) -> Option<crate::compression::Codec> {
        use crate::compression::Codec;
        match self {
            Compression::Gzip => Some(Codec::Gzip),
            Compression::None => None,
            Compression::Zstd => Some(Codec::Zstd),
            Compression::Snappy => Some(Codec::Snappy),
            Compression::Deflate => Some(Codec::Zlib),
        }
    }
}

/// Headers added to every request (`X-Scope-OrgID`, `Authorization`, ...); values are text
/// even when written as numbers (`X-Scope-OrgID: 123`, see [`text`]).
pub type Headers = BTreeMap<String, String>;

/// A YAML scalar read as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_yaml::Number),
    Bool(bool),
}

/// The message of a text setting given a value that is not a scalar.
pub(crate) const NOT_TEXT: &str = "expected text (a string, number or boolean)";
/// The message of a list of text ([`text_list`]) given something else.
pub(crate) const NOT_TEXT_LIST: &str =
    "expected a list of text values (strings, numbers or booleans)";
/// The message of [`Headers`] given something else.
pub(crate) const NOT_HEADERS: &str =
    "expected a mapping of names to text values (strings, numbers or booleans)";

/// The error of a value that is not a scalar (untagged enums say nothing useful).
fn not_text<E: serde::de::Error>(_: E) -> E {
    E::custom(NOT_TEXT)
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> String {
        match s {
            Scalar::Text(t) => t,
            // a number or boolean as YAML wrote it (an environment value such as a numeric
            // tenant id or token is inserted unquoted only when it reads back unchanged)
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A text setting that also takes a number or boolean as its text, as the Collector does for
/// a string field (a tenant id `123`, a numeric token from `${env:TOKEN}`).
pub fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from).map_err(not_text)
}

/// [`text`] for an optional setting.
pub fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar>::deserialize(d)
        .map(|o| o.map(String::from))
        .map_err(not_text)
}

/// [`text`] for a list.
pub fn text_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<Scalar>::deserialize(d)
        .map(|v| v.into_iter().map(String::from).collect())
        .map_err(|_: D::Error| serde::de::Error::custom(NOT_TEXT_LIST))
}

/// [`text`] for the values of [`Headers`].
pub fn headers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
    BTreeMap::<String, Scalar>::deserialize(d)
        .map(|m| m.into_iter().map(|(k, v)| (k, String::from(v))).collect())
        .map_err(|_: D::Error| serde::de::Error::custom(NOT_HEADERS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_settings_take_numbers_and_booleans_as_written() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "headers")]
            h: Headers,
            #[serde(deserialize_with = "opt_text")]
            t: Option<String>,
            #[serde(deserialize_with = "text_list")]
            l: Vec<String>,
        }
        let t: T = serde_yaml::from_str(
            "h: { X-Scope-OrgID: 123, X-F: 0.5, X-B: true, X-S: s }\nt: 98765432123\nl: [1, x]\n",
        )
        .unwrap();
        assert_eq!(t.h["X-Scope-OrgID"], "123");
        assert_eq!(t.h["X-F"], "0.5");
        assert_eq!(t.h["X-B"], "true");
        assert_eq!(t.h["X-S"], "s");
        assert_eq!(t.t.as_deref(), Some("98765432123"));
        assert_eq!(t.l, vec!["1", "x"]);
        let e = serde_yaml::from_str::<T>("h: { X: [1] }\nt: x\nl: []\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains(NOT_HEADERS), "{e}");
        let e = serde_yaml::from_str::<T>("h: {}\nt: x\nl: abc\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains(NOT_TEXT_LIST), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_byte_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_byte_size("123").unwrap(), 123);
        assert!(parse_byte_size("12 parsecs").is_err());
    }
}
