//! Configuration: the OpenTelemetry Collector's YAML shape with Watchtower's component types
//! (docs/ARCHITECTURE.md). Loading never stops at the first problem: every component is parsed
//! on its own and every error is reported with its key path and, where it can be found, its
//! line. Unknown component types and unknown keys are errors that name them.

pub mod address;
pub mod common;
pub mod default;
pub mod env;
mod keypath;
mod locate;
pub mod memory_budget;

use crate::exporter;
use crate::pipeline::payload::Signal;
use crate::processor;
use crate::receiver::config::OtlpConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;

/// One configuration problem: where, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Key path, e.g. `exporters.otlphttp/tempo.sending_queue`.
    pub path: String,
    /// 1-based line of the problem in the config file, when it could be found.
    pub line: Option<usize>,
    /// 1-based column of the bad value on `line`, when the YAML parser gave it.
    pub column: Option<usize>,
    /// What is wrong, e.g. `unknown unit "x" in duration "5x" (use ns, us, ms, s, m, h)`.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l} column {c}: ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            (None, _) => {}
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems found in one config.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A configured receiver (`receivers:` entry), by component type.
#[derive(Clone, Debug)]
pub enum ReceiverConfig {
    /// `otlp`: OTLP over gRPC and/or HTTP (`protocols.grpc`, `protocols.http`).
    Otlp(OtlpConfig),
}

/// A configured processor (`processors:` entry), by component type. `filter` and `transform`
/// hold their compiled OTTL statements, shared by every pipeline that lists them.
#[derive(Clone, Debug)]
pub enum ProcessorConfig {
    /// `memory_limiter`: refuses data while the process is over its memory limit.
    MemoryLimiter(processor::memory_limiter::Config),
    /// `batch`: batch size and timeout, applied in each exporter's worker (not a shared stage).
    Batch(processor::batch::Config),
    /// `resource`: attribute actions on each request's resources.
    Resource(processor::attributes::ResourceConfig),
    /// `attributes`: attribute actions on spans, log records and data points.
    Attributes(processor::attributes::AttributesConfig),
    /// `filter`: drops the items its OTTL conditions match.
    Filter(std::sync::Arc<processor::filter::Filter>),
    /// `transform`: OTTL statements that edit items.
    Transform(std::sync::Arc<processor::transform::Transform>),
    /// `deltatocumulative`: delta sums and histograms turned into cumulative ones.
    DeltaToCumulative(processor::deltatocumulative::Config),
}

/// A configured exporter (`exporters:` entry), by component type.
#[derive(Clone, Debug)]
pub enum ExporterConfig {
    /// `otlp`: OTLP/gRPC.
    Otlp(exporter::otlp::Config),
    /// `otlphttp`: OTLP/HTTP (protobuf, or JSON with `encoding: json`).
    OtlpHttp(exporter::otlphttp::Config),
    /// `debug`: one line per batch to stdout, or the batch as OTLP/JSON (`verbosity`).
    Debug(exporter::debug::Config),
    /// `prometheusremotewrite`: metrics as Prometheus remote-write 1.0.
    PrometheusRemoteWrite(exporter::prometheusremotewrite::Config),
    /// `loki`: logs through Loki's push API.
    Loki(exporter::loki::Config),
    /// `runsummary`: feeds the `runs` extension's per-run totals.
    RunSummary(crate::runs::exporter::Config),
}

impl ExporterConfig {
    /// Signals this exporter type accepts.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ExporterConfig::PrometheusRemoteWrite(_) => &[Signal::Metrics],
            ExporterConfig::Loki(_) => &[Signal::Logs],
            _ => &Signal::ALL,
        }
    }

    /// This exporter's `sending_queue` settings.
    pub fn queue(&self) -> &common::QueueSettings {
        match self {
            ExporterConfig::Otlp(c) => &c.sending_queue,
            ExporterConfig::OtlpHttp(c) => &c.sending_queue,
            ExporterConfig::Debug(c) => &c.sending_queue,
            ExporterConfig::PrometheusRemoteWrite(c) => &c.sending_queue,
            ExporterConfig::Loki(c) => &c.sending_queue,
            ExporterConfig::RunSummary(c) => &c.sending_queue,
        }
    }

    /// This exporter's `retry_on_failure` settings.
    pub fn retry(&self) -> &common::RetrySettings {
        match self {
            ExporterConfig::Otlp(c) => &c.retry_on_failure,
            ExporterConfig::OtlpHttp(c) => &c.retry_on_failure,
            ExporterConfig::Debug(c) => &c.retry_on_failure,
            ExporterConfig::PrometheusRemoteWrite(c) => &c.retry_on_failure,
            ExporterConfig::Loki(c) => &c.retry_on_failure,
            ExporterConfig::RunSummary(c) => &c.retry_on_failure,
        }
    }

    /// Builds the protocol half (no I/O happens until the first send), without exporter
    /// authenticators (for `validate`; references are checked when the config is loaded).
    pub fn build_sender(&self, id: &str) -> Result<std::sync::Arc<dyn exporter::Sender>, String> {
        self.build_sender_with(id, &crate::extension::auth::Authenticators::default())
    }

    /// Builds the protocol half with the running authenticators (`auth.authenticator`).
    pub fn build_sender_with(
        &self,
        id: &str,
        auths: &crate::extension::auth::Authenticators,
    ) -> Result<std::sync::Arc<dyn exporter::Sender>, String> {
        let client = |r: Option<&crate::extension::auth::AuthRef>| {
            if auths.is_empty() {
                Ok(None)
            } else {
                auths.client(r)
            }
        };
        match self {
            ExporterConfig::Otlp(c) => exporter::otlp::build(c, client(c.auth.as_ref())?),
            ExporterConfig::OtlpHttp(c) => exporter::otlphttp::build(c, client(c.auth.as_ref())?),
            ExporterConfig::Debug(c) => exporter::debug::build(c, id),
            ExporterConfig::PrometheusRemoteWrite(c) => exporter::prometheusremotewrite::build(c),
            ExporterConfig::Loki(c) => exporter::loki::build(c),
            // App::start builds it with the running registry; this is for `validate`
            ExporterConfig::RunSummary(_) => crate::runs::exporter::build_detached(),
        }
    }
}

/// `extensions: health_check` settings: the health, readiness and self-metrics listener
/// (the Collector's `healthcheckextension` keys plus Watchtower's listener limits).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// `host:port` to listen on; default `0.0.0.0:13133`.
    #[serde(default = "default_health")]
    pub endpoint: String,
    /// URL path of the health answer; default `/`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// confighttp's timeouts and Watchtower's `min_body_rate` / `max_connections` for this
    /// listener, which also serves the runs API (docs/listeners.md).
    #[serde(default = "crate::listener::config::defaults::read_header_timeout")]
    pub read_header_timeout: common::Dur,
    /// Longest time to receive a whole request body; `0` (the default) turns it off.
    #[serde(default)]
    pub read_timeout: common::Dur,
    /// Longest stall of a write to the client (no progress) before the connection is closed.
    #[serde(default = "crate::listener::config::defaults::write_timeout")]
    pub write_timeout: common::Dur,
    /// How long a connection with no open request stays open.
    #[serde(default = "crate::listener::config::defaults::idle_timeout")]
    pub idle_timeout: common::Dur,
    /// Slowest accepted request body, in bytes per second (over 10 s windows); `0` turns it off.
    #[serde(default = "crate::listener::config::defaults::min_body_rate")]
    pub min_body_rate: common::ByteSize,
    /// Most connections open at once; at the cap the longest-idle one is closed to make room,
    /// or the new one is refused when all are busy.
    #[serde(default = "crate::listener::config::defaults::admin_max_connections")]
    pub max_connections: usize,
}

fn default_health() -> String {
    "0.0.0.0:13133".into()
}
fn default_health_path() -> String {
    "/".into()
}

impl HealthCheckConfig {
    /// The listener keys of this extension.
    pub fn server_keys(&self) -> crate::listener::config::HttpServerKeys {
        crate::listener::config::HttpServerKeys {
            read_header_timeout: self.read_header_timeout,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            idle_timeout: self.idle_timeout,
            min_body_rate: self.min_body_rate,
            max_connections: self.max_connections,
            max_connection_age: common::Dur::default(),
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: default_health(),
            path: default_health_path(),
            read_header_timeout: crate::listener::config::defaults::read_header_timeout(),
            read_timeout: common::Dur::default(),
            write_timeout: crate::listener::config::defaults::write_timeout(),
            idle_timeout: crate::listener::config::defaults::idle_timeout(),
            min_body_rate: crate::listener::config::defaults::min_body_rate(),
            max_connections: crate::listener::config::defaults::admin_max_connections(),
        }
    }
}

/// A configured extension (`extensions:` entry), by component type.
#[derive(Clone, Debug)]
pub enum ExtensionConfig {
    /// `health_check`: health, readiness, self-metrics and the runs API.
    HealthCheck(HealthCheckConfig),
    /// Durable queues' directory and fsync mode (`sending_queue.storage` names it).
    FileStorage(crate::queue::durable::FileStorageConfig),
    /// `runs`: test runs (stamping and per-run totals).
    Runs(crate::runs::RunsConfig),
    /// Bearer-token authenticator (server and client roles).
    BearerTokenAuth(crate::extension::bearertokenauth::Config),
    /// HTTP Basic authenticator (`htpasswd` server role, `client_auth` client role).
    BasicAuth(crate::extension::basicauth::Config),
    /// Status pages, tap, recent data (`crate::extension::zpages`).
    Zpages(crate::extension::zpages::ZpagesConfig),
}

/// One `service.pipelines` entry: component ids, in order.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver (or connector) ids feeding this pipeline.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Processor ids, applied in this order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporter (or connector) ids every accepted request goes to.
    #[serde(default)]
    pub exporters: Vec<String>,
}

/// `service.telemetry.metrics`: where Watchtower's own Prometheus metrics are served.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsTelemetry {
    /// `host:port` of the self-metrics endpoint; default `0.0.0.0:8888`.
    pub address: String,
    /// The Collector's metrics level (`none`, `basic`, `normal`, `detailed`, any case);
    /// `none` turns the endpoint off, any other level serves every metric. Default `normal`.
    pub level: MetricsLevel,
    /// The Collector's current form (v0.111+): one `pull` reader with a `prometheus`
    /// exporter (`host`, `port`) sets the endpoint instead of `address`; `periodic` (push)
    /// readers are refused.
    pub readers: Vec<MetricReader>,
}

impl Default for MetricsTelemetry {
    fn default() -> Self {
        MetricsTelemetry {
            address: "0.0.0.0:8888".into(),
            level: MetricsLevel::Normal,
            readers: Vec::new(),
        }
    }
}

impl MetricsTelemetry {
    /// `host:port` of the self-metrics endpoint: the pull reader's when one is configured,
    /// else `address`; empty (or level `none`) means no endpoint.
    pub fn endpoint(&self) -> String {
        match self.readers.iter().find_map(|r| r.pull.as_ref()) {
            Some(p) => {
                let host = &p.exporter.prometheus.host;
                if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]:{}", p.exporter.prometheus.port)
                } else {
                    format!("{host}:{}", p.exporter.prometheus.port)
                }
            }
            None => self.address.clone(),
        }
    }
}

/// One entry of `service.telemetry.metrics.readers`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricReader {
    /// `pull`: a Prometheus endpoint others scrape.
    pub pull: Option<PullReader>,
}

impl<'de> Deserialize<'de> for MetricReader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            pull: Option<PullReader>,
            periodic: Option<serde_yaml::Value>,
        }
        let r = Raw::deserialize(d)?;
        if r.periodic.is_some() {
            return Err(serde::de::Error::custom(
                "periodic readers (pushing self-metrics over OTLP) are not supported; use a pull reader with a prometheus exporter (host, port) and scrape it",
            ));
        }
        if r.pull.is_none() {
            return Err(serde::de::Error::custom("a reader needs `pull`"));
        }
        Ok(MetricReader { pull: r.pull })
    }
}

/// `readers[].pull`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullReader {
    /// `exporter`: only `prometheus`.
    pub exporter: PullExporter,
}

/// `readers[].pull.exporter`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullExporter {
    /// The Prometheus endpoint.
    pub prometheus: PrometheusPull,
}

/// `readers[].pull.exporter.prometheus`: where `/metrics` is served (the Collector's naming
/// options, `without_units` and the like, are refused by name: the names are fixed).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusPull {
    /// Host to listen on (the Collector's default is `localhost`).
    #[serde(default = "default_pull_host")]
    pub host: String,
    /// Port to listen on.
    pub port: u16,
}

fn default_pull_host() -> String {
    "localhost".into()
}

/// `service.telemetry.metrics.level`, the Collector's `configtelemetry.Level` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsLevel {
    /// No self-metrics endpoint.
    None,
    /// Served like `normal` (Watchtower has no per-level metric sets).
    Basic,
    /// The default.
    Normal,
    /// Served like `normal`.
    Detailed,
}

impl<'de> Deserialize<'de> for MetricsLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(MetricsLevel::None),
            "basic" => Ok(MetricsLevel::Basic),
            "normal" => Ok(MetricsLevel::Normal),
            "detailed" => Ok(MetricsLevel::Detailed),
            _ => Err(serde::de::Error::custom(format!(
                "unknown metrics level `{s}`, expected one of none, basic, normal, detailed"
            ))),
        }
    }
}

/// `service.telemetry.logs.encoding`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    /// One readable line per event.
    #[default]
    Console,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// `service.telemetry.logs.level`: the Collector's levels (zap's words, any case) and `trace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything, with the libraries' own detail.
    Trace,
    /// Debug detail.
    Debug,
    /// The default.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            // zap's levels above error: Watchtower logs nothing above error
            "error" | "dpanic" | "panic" | "fatal" => Ok(LogLevel::Error),
            _ => Err(serde::de::Error::custom(format!(
                "unknown log level `{s}`, expected one of trace, debug, info, warn, error (dpanic, panic, fatal: as error)"
            ))),
        }
    }
}

/// `service.telemetry.logs`: Watchtower's own log settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogsTelemetry {
    /// `trace`, `debug`, `info`, `warn`, `error` (any case; default `info`); `RUST_LOG`
    /// wins when set.
    pub level: Option<LogLevel>,
    /// `console` (default: one readable line per event) or `json` (one JSON object per line,
    /// for log pipelines), the Collector's `encoding` words.
    pub encoding: LogEncoding,
    /// URL path prefixes whose next segment is a credential, masked in logs and in
    /// `validate` (Sumo Logic's `/receiver/v1/otlp/` is always masked).
    pub secret_path_prefixes: Vec<String>,
}

/// `service.telemetry`: Watchtower's own metrics and logs.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// Self-metrics endpoint.
    pub metrics: MetricsTelemetry,
    /// Log level and masking.
    pub logs: LogsTelemetry,
}

/// The `service:` section: which extensions run, self-telemetry, the pipelines.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Extension ids to start (an extension configured but not listed does not run).
    pub extensions: Vec<String>,
    /// Self-telemetry settings.
    pub telemetry: Telemetry,
    /// Pipelines by id (`traces`, `metrics/backup`, ...); the type part names the signal.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// How long SIGTERM waits for queues to drain.
    pub shutdown_timeout: common::Dur,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            extensions: vec![],
            telemetry: Telemetry::default(),
            pipelines: BTreeMap::new(),
            shutdown_timeout: common::Dur::secs(10),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Receivers by component id (`otlp`, `otlp/internal`).
    pub receivers: BTreeMap<String, ReceiverConfig>,
    /// Processors by component id.
    pub processors: BTreeMap<String, ProcessorConfig>,
    /// Exporters by component id.
    pub exporters: BTreeMap<String, ExporterConfig>,
    /// Extensions by component id (configured; `service.extensions` says which run).
    pub extensions: BTreeMap<String, ExtensionConfig>,
    /// Connectors by component id.
    pub connectors: BTreeMap<String, ConnectorConfig>,
    /// The `service:` section.
    pub service: ServiceConfig,
    /// The config tree as loaded (env references expanded), for the zpages config view,
    /// which shows it with secrets masked.
    pub source: serde_yaml::Value,
}

/// A connector (exporter of one pipeline, receiver of others).
#[derive(Clone, Debug)]
pub enum ConnectorConfig {
    /// `routing`: sends each request to the pipelines whose OTTL condition matches it.
    Routing(crate::connector::routing::Config),
}

/// The 1-based line of a key path in a config text, best effort (block and flow mappings);
/// for errors found after loading, such as an exporter that fails to build.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    locate::find(text, path)
}

/// The type part of a component id (`otlphttp/tempo` -> `otlphttp`).
pub fn component_type(id: &str) -> &str {
    id.split_once('/').map(|(t, _)| t).unwrap_or(id)
}

fn check_id(id: &str) -> Result<(), String> {
    let (t, name) = match id.split_once('/') {
        Some((t, n)) => (t, Some(n)),
        None => (id, None),
    };
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid component id {id:?}: the type must be letters, digits or _"
        ));
    }
    if let Some(n) = name
        && (n.is_empty() || n.contains('/'))
    {
        return Err(format!(
            "invalid component id {id:?}: expected type or type/name"
        ));
    }
    Ok(())
}

struct Loader<'a> {
    text: &'a str,
    /// what typed environment references held, for text settings given one
    originals: env::Originals,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        let message = message.into();
        let mut line = locate::find(self.text, path);
        // serde names the offending key for unknown fields: point at it
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            let mut p: Vec<&str> = path.to_vec();
            p.push(field);
            line = locate::find(self.text, &p).or(line);
        }
        self.errors.push(ConfigError {
            path: path.join("."),
            line,
            column: None,
            message,
        });
    }

    /// OTTL errors, each at the line holding its statement (found after the component's
    /// own line).
    fn statement_errors(&mut self, path: &[&str], errs: &[processor::filter::StatementError]) {
        let start = locate::find(self.text, path).unwrap_or(1);
        for e in errs {
            let line = (!e.text.is_empty())
                .then(|| {
                    self.text
                        .lines()
                        .enumerate()
                        .skip(start.saturating_sub(1))
                        .find(|(_, l)| l.contains(e.text.as_str()))
                        .map(|(i, _)| i + 1)
                })
                .flatten()
                .or(Some(start));
            self.errors.push(ConfigError {
                path: format!("{}.{}", path.join("."), e.key),
                line,
                column: None,
                message: format!("{:?}: {}", e.text, e.error),
            });
        }
    }

    fn parse<T: DeserializeOwned>(&mut self, path: &[&str], v: &serde_yaml::Value) -> Option<T> {
        match keypath::parse::<T>(self.text, path, v, &self.originals) {
            Ok(t) => Some(t),
            Err(errs) => {
                for e in errs {
                    let mut full: Vec<&str> = path.to_vec();
                    let below = keypath::display(&e.path);
                    if !below.is_empty() {
                        full.push(&below);
                    }
                    self.errors.push(ConfigError {
                        path: full.join("."),
                        line: e
                            .position
                            .map(|p| p.0)
                            .or_else(|| locate::find(self.text, path)),
                        column: e.position.map(|p| p.1),
                        message: e.message,
                    });
                }
                None
            }
        }
    }

    fn section<'v>(
        &mut self,
        root: &'v serde_yaml::Mapping,
        name: &str,
    ) -> Vec<(String, &'v serde_yaml::Value)> {
        let mut out = Vec::new();
        match root.get(name) {
            None | Some(serde_yaml::Value::Null) => {}
            Some(serde_yaml::Value::Mapping(m)) => {
                for (k, v) in m {
                    match k.as_str() {
                        Some(id) => match check_id(id) {
                            Ok(()) => out.push((id.to_string(), v)),
                            Err(e) => self.err(&[name, id], e),
                        },
                        None => self.err(&[name], "component ids must be strings"),
                    }
                }
            }
            Some(_) => self.err(&[name], "must be a mapping of component ids to settings"),
        }
        out
    }
}

/// Parses and validates a config text. `lookup` resolves environment variables.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    // references become placeholders of their width, resolved inside the parsed values
    let masked = env::mask(text);
    let mut root: serde_yaml::Value = serde_yaml::from_str(&masked.text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
            message: format!("invalid YAML: {}", keypath::plain_yaml_error(&e)),
        }])
    })?;
    let originals = env::resolve(&mut root, &masked, lookup).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| ConfigError {
                    path: String::new(),
                    line: Some(e.line),
                    column: None,
                    message: e.message,
                })
                .collect(),
        )
    })?;
    let mut ld = Loader {
        text: &masked.text,
        originals,
        errors: Vec::new(),
    };
    let empty = serde_yaml::Mapping::new();
    let root = match &root {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => &empty,
        _ => {
            return Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                line: Some(1),
                column: None,
                message: "the config must be a YAML mapping".into(),
            }]));
        }
    };
    for k in root.keys() {
        let known = [
            "receivers",
            "processors",
            "exporters",
            "extensions",
            "service",
            "connectors",
        ];
        match k.as_str() {
            Some(s) if known.contains(&s) => {}
            Some(s) => ld.err(&[s], format!("unknown top-level key {s:?} (expected one of receivers, processors, exporters, connectors, extensions, service)")),
            None => ld.err(&[], "top-level keys must be strings"),
        }
    }
    let mut cfg = Config {
        source: serde_yaml::Value::Mapping(root.clone()),
        ..Config::default()
    };
    for (id, v) in ld.section(root, "receivers") {
        let p = ["receivers", id.as_str()];
        match component_type(&id) {
            "otlp" => {
                if let Some(c) = ld.parse::<OtlpConfig>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.receivers.insert(id.clone(), ReceiverConfig::Otlp(c));
                }
            }
            t => ld.err(&p, format!("unknown receiver type {t:?} (supported: otlp)")),
        }
    }
    for (id, v) in ld.section(root, "processors") {
        let p = ["processors", id.as_str()];
        let parsed = match component_type(&id) {
            "memory_limiter" => ld
                .parse::<processor::memory_limiter::Config>(&p, v)
                .map(|c| (c.validate(), ProcessorConfig::MemoryLimiter(c))),
            "batch" => ld
                .parse::<processor::batch::Config>(&p, v)
                .map(|c| (c.validate(), ProcessorConfig::Batch(c))),
            "resource" => ld
                .parse::<processor::attributes::ResourceConfig>(&p, v)
                .map(|c| {
                    (
                        processor::attributes::validate_actions(&c.attributes),
                        ProcessorConfig::Resource(c),
                    )
                }),
            "attributes" => ld
                .parse::<processor::attributes::AttributesConfig>(&p, v)
                .map(|c| {
                    (
                        processor::attributes::validate_actions(&c.actions),
                        ProcessorConfig::Attributes(c),
                    )
                }),
            "filter" => ld.parse::<processor::filter::Config>(&p, v).and_then(|c| {
                match processor::filter::Filter::compile(&c) {
                    Ok(f) => Some((Ok(()), ProcessorConfig::Filter(std::sync::Arc::new(f)))),
                    Err(errs) => {
                        ld.statement_errors(&p, &errs);
                        None
                    }
                }
            }),
            "transform" => ld
                .parse::<processor::transform::Config>(&p, v)
                .and_then(|c| match processor::transform::Transform::compile(&c) {
                    Ok(t) => Some((Ok(()), ProcessorConfig::Transform(std::sync::Arc::new(t)))),
                    Err(errs) => {
                        ld.statement_errors(&p, &errs);
                        None
                    }
                }),
            "deltatocumulative" => ld
                .parse::<processor::deltatocumulative::Config>(&p, v)
                .map(|c| (c.validate(), ProcessorConfig::DeltaToCumulative(c))),
            t => {
                ld.err(&p, format!("unknown processor type {t:?} (supported: memory_limiter, batch, resource, attributes, filter, transform, deltatocumulative)"));
                None
            }
        };
        if let Some((check, c)) = parsed {
            if let Err(e) = check {
                ld.err(&p, e);
            }
            cfg.processors.insert(id.clone(), c);
        }
    }
    for (id, v) in ld.section(root, "connectors") {
        let p = ["connectors", id.as_str()];
        match component_type(&id) {
            "routing" => {
                if let Some(c) = ld.parse::<crate::connector::routing::Config>(&p, v) {
                    cfg.connectors
                        .insert(id.clone(), ConnectorConfig::Routing(c));
                }
            }
            t => ld.err(
                &p,
                format!("unknown connector type {t:?} (supported: routing)"),
            ),
        }
    }
    for (id, v) in ld.section(root, "exporters") {
        let p = ["exporters", id.as_str()];
        let parsed = match component_type(&id) {
            "otlp" => ld.parse(&p, v).map(ExporterConfig::Otlp),
            "otlphttp" => ld.parse(&p, v).map(ExporterConfig::OtlpHttp),
            "debug" => ld.parse(&p, v).map(ExporterConfig::Debug),
            "prometheusremotewrite" => ld.parse(&p, v).map(ExporterConfig::PrometheusRemoteWrite),
            "loki" => ld.parse(&p, v).map(ExporterConfig::Loki),
            "runsummary" => ld.parse(&p, v).map(ExporterConfig::RunSummary),
            t => {
                ld.err(&p, format!("unknown exporter type {t:?} (supported: otlp, otlphttp, debug, prometheusremotewrite, loki, runsummary)"));
                None
            }
        };
        if let Some(c) = parsed {
            check_queue(&mut ld, &p, c.queue(), c.retry());
            cfg.exporters.insert(id.clone(), c);
        }
    }
    for (id, v) in ld.section(root, "extensions") {
        let p = ["extensions", id.as_str()];
        match component_type(&id) {
            "health_check" => {
                if let Some(c) = ld.parse::<HealthCheckConfig>(&p, v) {
                    if let Err(e) =
                        crate::listener::config::check_max_connections(c.max_connections)
                    {
                        ld.err(&p, e);
                    }
                    cfg.extensions
                        .insert(id.clone(), ExtensionConfig::HealthCheck(c));
                }
            }
            "file_storage" => {
                if let Some(c) = ld.parse::<crate::queue::durable::FileStorageConfig>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.extensions
                        .insert(id.clone(), ExtensionConfig::FileStorage(c));
                }
            }
            "runs" => {
                if let Some(c) = ld.parse::<crate::runs::RunsConfig>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.extensions.insert(id.clone(), ExtensionConfig::Runs(c));
                }
            }
            "bearertokenauth" => {
                if let Some(c) = ld.parse::<crate::extension::bearertokenauth::Config>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.extensions
                        .insert(id.clone(), ExtensionConfig::BearerTokenAuth(c));
                }
            }
            "basicauth" => {
                if let Some(c) = ld.parse::<crate::extension::basicauth::Config>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.extensions
                        .insert(id.clone(), ExtensionConfig::BasicAuth(c));
                }
            }
            "zpages" => {
                if let Some(c) = ld.parse::<crate::extension::zpages::ZpagesConfig>(&p, v) {
                    if let Err(e) = c.validate() {
                        ld.err(&p, e);
                    }
                    cfg.extensions
                        .insert(id.clone(), ExtensionConfig::Zpages(c));
                }
            }
            t => ld.err(
                &p,
                format!(
                    "unknown extension type {t:?} (supported: health_check, runs, file_storage, bearertokenauth, basicauth, zpages)"
                ),
            ),
        }
    }
    // whether cfg.service.pipelines holds what the file says (false: the service section did
    // not parse, its errors are reported, and the pipeline checks would only add false ones)
    let mut pipelines_read = true;
    if let Some(s) = root.get("service") {
        if let Some(svc) = ld.parse::<ServiceConfig>(&["service"], s) {
            cfg.service = svc;
        } else {
            // an error elsewhere in `service` (telemetry, say): the pipelines alone may still
            // parse, so their cross-references are checked in the same pass
            let pipelines = s.get("pipelines").map(|p| {
                keypath::parse::<BTreeMap<String, PipelineConfig>>(
                    ld.text,
                    &["service", "pipelines"],
                    p,
                    &ld.originals,
                )
            });
            match pipelines {
                Some(Ok(p)) => cfg.service.pipelines = p,
                _ => pipelines_read = false,
            }
        }
    } else {
        ld.err(&[], "missing section `service` (with service.pipelines)");
    }
    let address_errors = address::check(root);
    let addresses_read = address_errors.is_empty();
    for (path, message) in address_errors {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        ld.err(&p, message);
    }
    if pipelines_read {
        check_service(&mut ld, &cfg, root);
    }
    check_storage(&mut ld, &cfg);
    let metrics_keys = root
        .get("service")
        .and_then(|s| s.get("telemetry"))
        .and_then(|t| t.get("metrics"))
        .and_then(|m| m.as_mapping());
    if metrics_keys.is_some_and(|m| m.contains_key("address") && m.contains_key("readers")) {
        ld.err(
            &["service", "telemetry", "metrics", "readers"],
            "set either address or readers (both name the self-metrics endpoint)",
        );
    }
    if cfg.service.telemetry.metrics.readers.len() > 1 {
        ld.err(
            &["service", "telemetry", "metrics", "readers"],
            "one reader at most (a pull reader with a prometheus exporter)",
        );
    }
    if addresses_read {
        for (path, message) in address::clashes(&cfg) {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            ld.err(&p, message);
        }
    }
    for (path, m) in memory_budget::check(&cfg) {
        let parts: Vec<&str> = path.split('.').collect();
        ld.err(&parts, m);
    }
    for (path, msg) in crate::extension::auth::check_references(&cfg) {
        let parts: Vec<&str> = path.split('.').collect();
        ld.err(&parts, msg);
    }
    if ld.errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(ld.errors))
    }
}

fn check_queue(ld: &mut Loader, p: &[&str], q: &common::QueueSettings, r: &common::RetrySettings) {
    let mut qp = p.to_vec();
    qp.push("sending_queue");
    if q.queue_size == 0 {
        ld.err(&qp, "queue_size must be positive");
    }
    if q.num_consumers == 0 {
        ld.err(&qp, "num_consumers must be positive");
    }
    if q.block_on_overflow == Some(true) && q.full_policy != common::FullPolicy::Block {
        ld.err(
            &qp,
            "block_on_overflow: true contradicts full_policy; use one of them",
        );
    }
    if q.storage.is_some() && !q.enabled {
        ld.err(&qp, "storage needs the queue enabled (enabled: true)");
    }
    let mut rp = p.to_vec();
    rp.push("retry_on_failure");
    if r.multiplier < 1.0 {
        ld.err(&rp, "multiplier must be at least 1");
    }
    if !(0.0..=1.0).contains(&r.randomization_factor) {
        ld.err(&rp, "randomization_factor must be between 0 and 1");
    }
}

/// `sending_queue.storage` must name a `file_storage` extension that is defined and listed in
/// `service.extensions`.
fn check_storage(ld: &mut Loader, cfg: &Config) {
    for (id, ec) in &cfg.exporters {
        let Some(st) = &ec.queue().storage else {
            continue;
        };
        let p = ["exporters", id.as_str(), "sending_queue", "storage"];
        if component_type(st) != "file_storage" {
            ld.err(
                &p,
                format!("storage {st:?} must name a file_storage extension (file_storage or file_storage/name)"),
            );
        } else if !matches!(
            cfg.extensions.get(st),
            Some(ExtensionConfig::FileStorage(_))
        ) {
            ld.err(&p, format!("extension {st:?} is not defined in extensions"));
        } else if !cfg.service.extensions.contains(st) {
            ld.err(
                &p,
                format!("extension {st:?} is not listed in service.extensions"),
            );
        }
    }
}

fn check_service(ld: &mut Loader, cfg: &Config, root: &serde_yaml::Mapping) {
    if root.get("service").is_none() {
        return;
    }
    for e in &cfg.service.extensions {
        if !cfg.extensions.contains_key(e)
            && !ld
                .errors
                .iter()
                .any(|x| x.path == format!("extensions.{e}"))
        {
            ld.err(
                &["service", "extensions"],
                format!("extension {e:?} is not defined in extensions"),
            );
        }
    }
    if cfg.service.pipelines.is_empty() {
        ld.err(
            &["service", "pipelines"],
            "at least one pipeline is required",
        );
    }
    let defined = |sect: &str, id: &str| -> bool {
        root.get(sect)
            .and_then(|s| s.as_mapping())
            .is_some_and(|m| m.contains_key(id))
    };
    for (name, pl) in &cfg.service.pipelines {
        let p = ["service", "pipelines", name.as_str()];
        let signal = match check_id(name)
            .ok()
            .and_then(|_| Signal::parse(component_type(name)))
        {
            Some(s) => s,
            None => {
                ld.err(&p, format!("invalid pipeline id {name:?}: expected traces, metrics or logs, optionally with /name"));
                continue;
            }
        };
        if pl.receivers.is_empty() {
            ld.err(&p, "at least one receiver is required");
        }
        if pl.exporters.is_empty() {
            ld.err(&p, "at least one exporter is required");
        }
        for r in &pl.receivers {
            if !defined("receivers", r) && !defined("connectors", r) {
                ld.err(&p, format!("receiver {r:?} is not defined in receivers"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for pr in &pl.processors {
            if !defined("processors", pr) {
                ld.err(&p, format!("processor {pr:?} is not defined in processors"));
            }
            if !seen.insert(pr) {
                ld.err(&p, format!("processor {pr:?} is listed twice"));
            }
        }
        if let Some(pos) = pl
            .processors
            .iter()
            .position(|x| component_type(x) == "memory_limiter")
            && pos != 0
        {
            ld.err(&p, "memory_limiter must be the first processor");
        }
        for e in &pl.exporters {
            if let Some(ConnectorConfig::Routing(c)) = cfg.connectors.get(e) {
                check_routing(ld, cfg, e, c, signal, name);
                continue;
            }
            if !defined("exporters", e) && !defined("connectors", e) {
                ld.err(&p, format!("exporter {e:?} is not defined in exporters"));
            } else if let Some(ec) = cfg.exporters.get(e)
                && !ec.signals().contains(&signal)
            {
                ld.err(
                    &p,
                    format!(
                        "exporter {e:?} does not support {signal} (it takes {})",
                        ec.signals()
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
}

/// Checks a routing connector used as an exporter by pipeline `from`: its table compiles for
/// the signal and every pipeline it names exists, has that signal, receives from it and does
/// not itself export to a connector.
fn check_routing(
    ld: &mut Loader,
    cfg: &Config,
    id: &str,
    c: &crate::connector::routing::Config,
    signal: Signal,
    from: &str,
) {
    let cp = ["connectors", id];
    if let Err(errs) = crate::connector::routing::Table::compile(c, signal) {
        ld.statement_errors(&cp, &errs);
    }
    if c.pipelines().is_empty() {
        ld.err(
            &cp,
            "the table or default_pipelines must name at least one pipeline",
        );
    }
    for target in c.pipelines() {
        match cfg.service.pipelines.get(target) {
            None => ld.err(
                &cp,
                format!("pipeline {target:?} is not defined in service.pipelines"),
            ),
            Some(tp) => {
                if Signal::parse(component_type(target)) != Some(signal) {
                    ld.err(
                        &cp,
                        format!("pipeline {target:?} is not a {signal} pipeline like {from:?}"),
                    );
                }
                if !tp.receivers.iter().any(|r| r == id) {
                    ld.err(
                        &cp,
                        format!("pipeline {target:?} does not list {id:?} in its receivers"),
                    );
                }
                if tp.exporters.iter().any(|e| cfg.connectors.contains_key(e)) {
                    ld.err(
                        &cp,
                        format!(
                            "pipeline {target:?} is fed by a connector and cannot export to one"
                        ),
                    );
                }
            }
        }
    }
}

/// Reads a config file.
pub fn load_file(path: &str) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read {path}: {e}"),
        }])
    })?;
    parse(&text, &env::process)
}

#[cfg(test)]
mod tests;
