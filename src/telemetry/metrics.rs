//! Self-metrics under the OpenTelemetry Collector's names, so existing Collector dashboards
//! and alerts work unchanged. Counters are exposed with the `_total` suffix, as the Collector
//! (0.9x and later) exposes them: `otelcol_receiver_accepted_spans_total{receiver,transport}`.

use crate::pipeline::payload::Signal;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub use super::labels::{ExporterLabels, ReasonLabels, ReceiverLabels, RefusedLabels};

type Fam<L> = Family<L, Counter>;

/// Per-signal counter families, indexed by [`Signal`].
pub struct PerSignal<L: Clone + std::hash::Hash + Eq> {
    fams: [Fam<L>; 3],
}

impl<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static>
    PerSignal<L>
{
    fn register(reg: &mut Registry, prefix: &str, help: &str) -> Self {
        let fams: [Fam<L>; 3] = Default::default();
        for s in Signal::ALL {
            reg.register(
                format!("{prefix}_{}", s.item_name()),
                format!("{help} ({})", s.item_name()),
                fams[s as usize].clone(),
            );
        }
        PerSignal { fams }
    }

    pub fn inc(&self, signal: Signal, labels: &L, n: u64) {
        if n > 0 {
            self.fams[signal as usize].get_or_create(labels).inc_by(n);
        }
    }

    pub fn get(&self, signal: Signal, labels: &L) -> u64 {
        self.fams[signal as usize].get_or_create(labels).get()
    }

    /// The counter of `signal` and `labels`, to be resolved once and incremented without a
    /// label lookup (it shares its value with the registered series).
    pub fn counter(&self, signal: Signal, labels: &L) -> Counter {
        self.fams[signal as usize].get_or_create(labels).clone()
    }
}

/// All self-metrics of one process.
pub struct Metrics {
    pub registry: parking_lot::Mutex<Registry>,
    pub receiver_accepted: PerSignal<ReceiverLabels>,
    pub receiver_refused: PerSignal<ReceiverLabels>,
    pub receiver_refused_reason: Family<RefusedLabels, Counter>,
    pub exporter_sent: PerSignal<ExporterLabels>,
    pub exporter_send_failed: PerSignal<ExporterLabels>,
    pub exporter_enqueue_failed: PerSignal<ExporterLabels>,
    pub exporter_queue_size: Family<ExporterLabels, Gauge>,
    pub exporter_queue_capacity: Family<ExporterLabels, Gauge>,
    pub exporter_queue_bytes: Family<ExporterLabels, Gauge>,
    pub exporter_queue_bytes_capacity: Family<ExporterLabels, Gauge>,
    pub exporter_retries: Family<ReasonLabels, Counter>,
    pub exporter_dropped: Family<ReasonLabels, Counter>,
    pub exporter_send_latency: Family<ExporterLabels, Histogram>,
    pub memory_limiter_refusals: Counter,
    pub process_rss_bytes: Gauge<u64, AtomicU64>,
    /// The Collector's process metrics (`service/internal/proctelemetry`), updated when the
    /// exposition is read: `otelcol_process_uptime` (s), `otelcol_process_cpu_seconds`
    /// (user + system), `otelcol_process_memory_rss` (bytes).
    pub process: ProcessMetrics,
    /// queue and durable-queue metrics (queue_metrics.rs)
    pub queue: super::queue_metrics::QueueMetrics,
    /// tap points, recent data and destination states (the zpages extension reads them)
    pub observe: crate::extension::zpages::observe::Observe,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut reg = Registry::default();
        let receiver_accepted = PerSignal::register(
            &mut reg,
            "otelcol_receiver_accepted",
            "Items successfully pushed into the pipeline",
        );
        let receiver_refused = PerSignal::register(
            &mut reg,
            "otelcol_receiver_refused",
            "Items that could not be pushed into the pipeline",
        );
        let receiver_refused_reason = Family::<RefusedLabels, Counter>::default();
        reg.register(
            "watchtower_receiver_refused_requests",
            "Requests refused by receivers, by reason",
            receiver_refused_reason.clone(),
        );
        let exporter_sent = PerSignal::register(
            &mut reg,
            "otelcol_exporter_sent",
            "Items successfully sent to the destination",
        );
        let exporter_send_failed = PerSignal::register(
            &mut reg,
            "otelcol_exporter_send_failed",
            "Items that failed to be sent (dropped after a permanent error or exhausted retries)",
        );
        let exporter_enqueue_failed = PerSignal::register(
            &mut reg,
            "otelcol_exporter_enqueue_failed",
            "Items that could not be added to the sending queue",
        );
        let exporter_queue_size = Family::<ExporterLabels, Gauge>::default();
        reg.register(
            "otelcol_exporter_queue_size",
            "Current number of batches in the sending queue",
            exporter_queue_size.clone(),
        );
        let exporter_queue_capacity = Family::<ExporterLabels, Gauge>::default();
        reg.register(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the sending queue, in batches",
            exporter_queue_capacity.clone(),
        );
        let exporter_queue_bytes = Family::<ExporterLabels, Gauge>::default();
        reg.register(
            "watchtower_exporter_queue_bytes",
            "Bytes held by the sending queue, in flight included",
            exporter_queue_bytes.clone(),
        );
        let exporter_queue_bytes_capacity = Family::<ExporterLabels, Gauge>::default();
        reg.register(
            "watchtower_exporter_queue_bytes_capacity",
            "Byte bound of the sending queue",
            exporter_queue_bytes_capacity.clone(),
        );
        let exporter_retries = Family::<ReasonLabels, Counter>::default();
        reg.register(
            "watchtower_exporter_retries",
            "Send attempts that failed retryably and were retried",
            exporter_retries.clone(),
        );
        let exporter_dropped = Family::<ReasonLabels, Counter>::default();
        reg.register(
            "watchtower_exporter_dropped_items",
            "Items dropped by an exporter, by reason",
            exporter_dropped.clone(),
        );
        let exporter_send_latency = Family::<ExporterLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let exporter_send_latency_reg = exporter_send_latency.clone();
        reg.register(
            "watchtower_exporter_send_duration_seconds",
            "Duration of one send attempt",
            exporter_send_latency_reg,
        );
        let memory_limiter_refusals = Counter::default();
        reg.register(
            "watchtower_memory_limiter_refused_requests",
            "Requests refused because the memory limit was reached",
            memory_limiter_refusals.clone(),
        );
        let process_rss_bytes = Gauge::<u64, AtomicU64>::default();
        reg.register(
            "watchtower_process_resident_memory_bytes",
            "Resident set size of the process",
            process_rss_bytes.clone(),
        );
        let process = ProcessMetrics::register(&mut reg);
        let queue = super::queue_metrics::QueueMetrics::register(&mut reg);
        Metrics {
            process,
            queue,
            observe: Default::default(),
            registry: parking_lot::Mutex::new(reg),
            receiver_accepted,
            receiver_refused,
            receiver_refused_reason,
            exporter_sent,
            exporter_send_failed,
            exporter_enqueue_failed,
            exporter_queue_size,
            exporter_queue_capacity,
            exporter_queue_bytes,
            exporter_queue_bytes_capacity,
            exporter_retries,
            exporter_dropped,
            exporter_send_latency: exporter_send_latency.clone(),
            memory_limiter_refusals,
            process_rss_bytes,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(rss) = crate::telemetry::process::rss_bytes() {
            self.process_rss_bytes.set(rss);
        }
        let reg = self.registry.lock();
        // under the registry lock: one reader at a time moves the counters
        self.process.update();
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }

    pub fn dropped(&self, exporter: &str, signal: Signal, reason: &str, n: u64) {
        if n > 0 {
            self.exporter_dropped
                .get_or_create(&ReasonLabels {
                    exporter: exporter.to_string(),
                    data_type: signal.as_str().to_string(),
                    reason: reason.to_string(),
                })
                .inc_by(n);
        }
    }

    pub fn dropped_count(&self, exporter: &str, signal: Signal, reason: &str) -> u64 {
        self.exporter_dropped
            .get_or_create(&ReasonLabels {
                exporter: exporter.to_string(),
                data_type: signal.as_str().to_string(),
                reason: reason.to_string(),
            })
            .get()
    }
}

/// The Collector's process metrics, names as its Prometheus endpoint shows them.
pub struct ProcessMetrics {
    started: std::time::Instant,
    uptime: Counter<f64, AtomicU64>,
    cpu_seconds: Counter<f64, AtomicU64>,
    memory_rss: Gauge<u64, AtomicU64>,
}

impl ProcessMetrics {
    fn register(reg: &mut Registry) -> ProcessMetrics {
        let m = ProcessMetrics {
            started: std::time::Instant::now(),
            uptime: Counter::default(),
            cpu_seconds: Counter::default(),
            memory_rss: Gauge::default(),
        };
        reg.register(
            "otelcol_process_uptime",
            "Uptime of the process (seconds)",
            m.uptime.clone(),
        );
        reg.register(
            "otelcol_process_cpu_seconds",
            "Total CPU user and system time (seconds)",
            m.cpu_seconds.clone(),
        );
        reg.register(
            "otelcol_process_memory_rss",
            "Total physical memory (resident set size, bytes)",
            m.memory_rss.clone(),
        );
        m
    }

    /// Moves the counters to the process's current figures (never backwards).
    fn update(&self) {
        let up = self.started.elapsed().as_secs_f64();
        self.uptime.inc_by((up - self.uptime.get()).max(0.0));
        if let Some(cpu) = crate::telemetry::process::cpu_seconds() {
            self.cpu_seconds
                .inc_by((cpu - self.cpu_seconds.get()).max(0.0));
        }
        if let Some(rss) = crate::telemetry::process::rss_bytes() {
            self.memory_rss.set(rss);
        }
    }
}
