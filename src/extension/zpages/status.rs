//! The status document (`/api/v1/status`): the pipelines graph as configured, with the
//! existing self-metric counters per component and signal, rates sampled once a second,
//! each exporter's queue fill and destination state, open test runs, build and uptime.

use crate::config::{Config, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig};
use crate::exporter::worker::Exporter;
use crate::pipeline::payload::Signal;
use crate::telemetry::metrics::{ExporterLabels, Metrics, ReceiverLabels};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// One pipeline as configured.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    pub name: String,
    pub signal: &'static str,
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

/// The configured components, kept for the status and debug pages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Topology {
    pub pipelines: Vec<PipelineView>,
    /// receiver id -> transports (`grpc`, `http`)
    pub receivers: BTreeMap<String, Vec<&'static str>>,
    /// processor id -> type
    pub processors: BTreeMap<String, String>,
    /// exporter id -> type
    pub exporters: BTreeMap<String, String>,
    /// extension id -> type (those in `service.extensions`)
    pub extensions: BTreeMap<String, String>,
}

impl Topology {
    pub fn from_config(cfg: &Config) -> Self {
        let mut t = Topology::default();
        for (name, p) in &cfg.service.pipelines {
            let signal = Signal::parse(crate::config::component_type(name))
                .map(|s| s.as_str())
                .unwrap_or("");
            t.pipelines.push(PipelineView {
                name: name.clone(),
                signal,
                receivers: p.receivers.clone(),
                processors: p.processors.clone(),
                exporters: p.exporters.clone(),
            });
            for r in &p.receivers {
                let transports = match cfg.receivers.get(r) {
                    Some(ReceiverConfig::Otlp(o)) => {
                        let mut v = Vec::new();
                        if o.protocols.grpc.is_some() {
                            v.push("grpc");
                        }
                        if o.protocols.http.is_some() {
                            v.push("http");
                        }
                        v
                    }
                    None => vec![],
                };
                t.receivers.insert(r.clone(), transports);
            }
            for pr in &p.processors {
                let ty = match cfg.processors.get(pr) {
                    Some(ProcessorConfig::MemoryLimiter(_)) => "memory_limiter",
                    Some(ProcessorConfig::Batch(_)) => "batch",
                    Some(ProcessorConfig::Resource(_)) => "resource",
                    Some(ProcessorConfig::Attributes(_)) => "attributes",
                    Some(ProcessorConfig::Filter(_)) => "filter",
                    Some(ProcessorConfig::Transform(_)) => "transform",
                    Some(ProcessorConfig::DeltaToCumulative(_)) => "deltatocumulative",
                    None => "",
                };
                t.processors.insert(pr.clone(), ty.into());
            }
            for e in &p.exporters {
                let ty = match cfg.exporters.get(e) {
                    Some(ExporterConfig::Otlp(_)) => "otlp",
                    Some(ExporterConfig::OtlpHttp(_)) => "otlphttp",
                    Some(ExporterConfig::Debug(_)) => "debug",
                    Some(ExporterConfig::PrometheusRemoteWrite(_)) => "prometheusremotewrite",
                    Some(ExporterConfig::Loki(_)) => "loki",
                    Some(ExporterConfig::RunSummary(_)) => "runsummary",
                    // a connector is an exporter of this pipeline
                    None => match cfg.connectors.get(e) {
                        Some(crate::config::ConnectorConfig::Routing(_)) => "routing",
                        None => "",
                    },
                };
                t.exporters.insert(e.clone(), ty.into());
            }
        }
        for id in &cfg.service.extensions {
            let ty = match cfg.extensions.get(id) {
                Some(ExtensionConfig::HealthCheck(_)) => "health_check",
                Some(ExtensionConfig::FileStorage(_)) => "file_storage",
                Some(ExtensionConfig::Runs(_)) => "runs",
                Some(ExtensionConfig::Zpages(_)) => "zpages",
                Some(ExtensionConfig::BearerTokenAuth(_)) => "bearertokenauth",
                Some(ExtensionConfig::BasicAuth(_)) => "basicauth",
                None => "",
            };
            t.extensions.insert(id.clone(), ty.into());
        }
        t
    }
}

/// Counter values keyed `kind/id/signal/counter`.
pub type Counters = BTreeMap<String, u64>;

/// Reads the current counters of every component (the self-metrics, not a second set).
pub fn counters(t: &Topology, m: &Metrics) -> Counters {
    let mut c = Counters::new();
    for (id, transports) in &t.receivers {
        for s in Signal::ALL {
            let (mut acc, mut refd) = (0, 0);
            for tr in transports {
                let l = ReceiverLabels {
                    receiver: id.clone(),
                    transport: (*tr).into(),
                };
                acc += m.receiver_accepted.get(s, &l);
                refd += m.receiver_refused.get(s, &l);
            }
            c.insert(format!("receiver/{id}/{s}/accepted"), acc);
            c.insert(format!("receiver/{id}/{s}/refused"), refd);
        }
    }
    for id in t.exporters.keys() {
        let l = ExporterLabels {
            exporter: id.clone(),
        };
        for s in Signal::ALL {
            c.insert(
                format!("exporter/{id}/{s}/sent"),
                m.exporter_sent.get(s, &l),
            );
            c.insert(
                format!("exporter/{id}/{s}/send_failed"),
                m.exporter_send_failed.get(s, &l),
            );
            c.insert(
                format!("exporter/{id}/{s}/enqueue_failed"),
                m.exporter_enqueue_failed.get(s, &l),
            );
        }
    }
    c
}

/// The last two counter samples, for rates.
#[derive(Default)]
pub struct Rates {
    prev: Option<(Instant, Counters)>,
    cur: Option<(Instant, Counters)>,
}

impl Rates {
    pub fn sample(&mut self, at: Instant, c: Counters) {
        self.prev = self.cur.take();
        self.cur = Some((at, c));
    }

    /// Per-second rate of one counter over the last sampling interval (0 before two samples).
    pub fn rate(&self, key: &str) -> f64 {
        match (&self.prev, &self.cur) {
            (Some((t0, a)), Some((t1, b))) => {
                let dt = t1.duration_since(*t0).as_secs_f64();
                let d = b.get(key).copied().unwrap_or(0) as f64
                    - a.get(key).copied().unwrap_or(0) as f64;
                if dt > 0.0 { (d / dt).max(0.0) } else { 0.0 }
            }
            _ => 0.0,
        }
    }
}

/// What the status document is built from.
pub struct Sources<'a> {
    pub topology: &'a Topology,
    pub metrics: &'a Metrics,
    pub exporters: &'a BTreeMap<String, Arc<Exporter>>,
    pub queue_capacity: &'a BTreeMap<String, (usize, u64)>,
    pub runs: Option<&'a crate::runs::Registry>,
    pub rates: &'a Mutex<Rates>,
}

fn per_signal(kind: &str, id: &str, names: &[&str], c: &Counters, r: &Rates) -> Value {
    let mut out = serde_json::Map::new();
    for s in Signal::ALL {
        let mut o = serde_json::Map::new();
        for n in names {
            let key = format!("{kind}/{id}/{s}/{n}");
            o.insert((*n).into(), json!(c.get(&key).copied().unwrap_or(0)));
            o.insert(format!("{n}_per_second"), json!(r.rate(&key)));
        }
        out.insert(s.as_str().into(), Value::Object(o));
    }
    Value::Object(out)
}

/// Builds the status document.
pub fn build(src: &Sources) -> Value {
    let t = src.topology;
    let c = counters(t, src.metrics);
    let rates = src.rates.lock();
    let obs = &src.metrics.observe;
    let receivers: serde_json::Map<String, Value> = t
        .receivers
        .iter()
        .map(|(id, tr)| {
            (
                id.clone(),
                json!({
                    "transports": tr,
                    "signals": per_signal("receiver", id, &["accepted", "refused"], &c, &rates),
                }),
            )
        })
        .collect();
    let processors: serde_json::Map<String, Value> = t
        .processors
        .iter()
        .map(|(id, ty)| (id.clone(), json!({ "type": ty })))
        .collect();
    let dests = obs.destinations();
    let exporters: serde_json::Map<String, Value> = t
        .exporters
        .iter()
        .map(|(id, ty)| {
            let (reqs, bytes, items, durable) = match src.exporters.get(id) {
                Some(e) => {
                    let (r, b, i) = e.queue_stats();
                    (r, b, i, e.is_durable())
                }
                None => (0, 0, 0, false),
            };
            let (cap_r, cap_b) = src.queue_capacity.get(id).copied().unwrap_or((0, 0));
            (
                id.clone(),
                json!({
                    "type": ty,
                    "signals": per_signal("exporter", id, &["sent", "send_failed", "enqueue_failed"], &c, &rates),
                    "queue": {
                        "requests": reqs,
                        "capacity_requests": if durable { Value::Null } else { json!(cap_r) },
                        "bytes": bytes,
                        "capacity_bytes": cap_b,
                        "items": items,
                        "durable": durable,
                        "durable_backlog_bytes": if durable { json!(bytes) } else { Value::Null },
                    },
                    "destination": dests.get(id),
                }),
            )
        })
        .collect();
    let runs: Vec<Value> = src
        .runs
        .map(|r| {
            r.list()
                .into_iter()
                .filter_map(|i| serde_json::to_value(i).ok())
                .filter(|v| v.get("state").and_then(|s| s.as_str()) == Some("open"))
                .collect()
        })
        .unwrap_or_default();
    let recent = match obs.recent() {
        Some(r) => {
            json!({ "enabled": true, "budget_bytes": r.budget(), "held_bytes": r.held_bytes() })
        }
        None => json!({ "enabled": false }),
    };
    json!({
        "build": { "name": "watchtower", "version": env!("CARGO_PKG_VERSION") },
        "started_unix_nano": obs.started_unix_nano,
        "uptime_seconds": obs.started.elapsed().as_secs_f64(),
        "pipelines": t.pipelines,
        "receivers": receivers,
        "processors": processors,
        "exporters": exporters,
        "extensions": t.extensions,
        "memory_limiter_refused_requests": src.metrics.memory_limiter_refusals.get(),
        "tap": { "viewers": obs.tap.viewers(), "lost_items": obs.tap.lost_items() },
        "recent": recent,
        "runs": runs,
    })
}
