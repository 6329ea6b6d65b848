//! Self-metrics of queues (docs/durable.md "Self-metrics added"), kept apart from the Collector-named ones in
//! `metrics.rs`: queued items per destination (memory and durable), and for durable queues
//! replayed items, damaged records, write errors, fsync latency and the items that a refused
//! request left in some durable queues; plus retry-budget refusals.

use super::labels::ExporterLabels;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DamageLabels {
    pub exporter: String,
    /// `torn_tail`, `corrupt_record`, `corrupt_segment`
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SegmentLabels {
    pub exporter: String,
    /// where the segment's file came from: `recycled`, `zeroed` (preallocated), `fresh`
    pub source: String,
}

pub struct QueueMetrics {
    pub items: Family<ExporterLabels, Gauge>,
    pub replayed: Family<ExporterLabels, Counter>,
    pub damaged: Family<DamageLabels, Counter>,
    pub write_errors: Family<ExporterLabels, Counter>,
    pub fsync: Family<ExporterLabels, Histogram>,
    pub segments: Family<SegmentLabels, Counter>,
    pub duplicate_risk: Family<ExporterLabels, Counter>,
    pub retry_budget_exhausted: Family<ExporterLabels, Counter>,
}

fn fsync_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

impl QueueMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = QueueMetrics {
            items: Family::default(),
            replayed: Family::default(),
            damaged: Family::default(),
            write_errors: Family::default(),
            fsync: Family::new_with_constructor(fsync_histogram as fn() -> Histogram),
            segments: Family::default(),
            duplicate_risk: Family::default(),
            retry_budget_exhausted: Family::default(),
        };
        reg.register(
            "watchtower_exporter_queue_items",
            "Items (spans, points, log records) waiting in the sending queue",
            m.items.clone(),
        );
        reg.register(
            "watchtower_durable_queue_replayed_items",
            "Items found in a durable queue at start and queued again (includes batches that were in flight at a crash: possible duplicates)",
            m.replayed.clone(),
        );
        reg.register(
            "watchtower_durable_queue_damaged_records",
            "Damage found in durable queue files, by kind (torn_tail, corrupt_record, corrupt_segment)",
            m.damaged.clone(),
        );
        reg.register(
            "watchtower_durable_queue_write_errors",
            "Failed appends or fsyncs of a durable queue (disk full, I/O error)",
            m.write_errors.clone(),
        );
        reg.register(
            "watchtower_durable_queue_fsync_duration_seconds",
            "Duration of one fsync of a durable queue segment",
            m.fsync.clone(),
        );
        reg.register(
            "watchtower_durable_queue_segments_started",
            "Segments a durable queue's writer started, by where the file came from (recycled: a delivered segment reused; zeroed: preallocated ahead; fresh: neither was ready, so its fsyncs also update file metadata)",
            m.segments.clone(),
        );
        reg.register(
            "watchtower_durable_queue_duplicate_risk_items",
            "Items written to this durable queue for a request that was refused because another durable queue failed; a client retry may deliver them twice",
            m.duplicate_risk.clone(),
        );
        reg.register(
            "watchtower_exporter_retry_budget_exhausted",
            "Retries postponed because the destination's retry budget was spent",
            m.retry_budget_exhausted.clone(),
        );
        m
    }
}

fn l(exporter: &str) -> ExporterLabels {
    ExporterLabels {
        exporter: exporter.to_string(),
    }
}

fn segment(exporter: &str, source: &str) -> SegmentLabels {
    SegmentLabels {
        exporter: exporter.to_string(),
        source: source.to_string(),
    }
}

impl QueueMetrics {
    pub fn durable_damage(&self, exporter: &str, kind: &str, n: u64) {
        self.damaged
            .get_or_create(&DamageLabels {
                exporter: exporter.to_string(),
                kind: kind.to_string(),
            })
            .inc_by(n);
    }

    pub fn durable_damage_count(&self, exporter: &str, kind: &str) -> u64 {
        self.damaged
            .get_or_create(&DamageLabels {
                exporter: exporter.to_string(),
                kind: kind.to_string(),
            })
            .get()
    }

    pub fn durable_write_error(&self, exporter: &str) {
        self.write_errors.get_or_create(&l(exporter)).inc();
    }

    pub fn durable_fsync(&self, exporter: &str, d: Duration) {
        self.fsync
            .get_or_create(&l(exporter))
            .observe(d.as_secs_f64());
    }

    pub fn durable_segment_started(&self, exporter: &str, source: &str) {
        self.segments
            .get_or_create(&segment(exporter, source))
            .inc();
    }

    pub fn durable_segments_started(&self, exporter: &str, source: &str) -> u64 {
        self.segments
            .get_or_create(&segment(exporter, source))
            .get()
    }

    pub fn durable_replayed(&self, exporter: &str, items: u64) {
        self.replayed.get_or_create(&l(exporter)).inc_by(items);
    }

    pub fn durable_replayed_count(&self, exporter: &str) -> u64 {
        self.replayed.get_or_create(&l(exporter)).get()
    }

    pub fn durable_duplicate_risk(&self, exporter: &str, items: u64) {
        self.duplicate_risk
            .get_or_create(&l(exporter))
            .inc_by(items);
    }

    pub fn retry_budget_exhausted(&self, exporter: &str) {
        self.retry_budget_exhausted
            .get_or_create(&l(exporter))
            .inc();
    }
}
