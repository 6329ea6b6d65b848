//! The observability layer of the exporter helper: every count and timing a destination's
//! workers record, under the Collector's self-metric names (`otelcol_exporter_sent_*`,
//! `otelcol_exporter_send_failed_*`, queue gauges) plus Watchtower's dropped-items and
//! retries-by-reason counters. Label sets are built once per exporter, not per batch.

use crate::exporter::{SendError, SendOk};
use crate::pipeline::payload::Signal;
use crate::queue::Queue;
use crate::telemetry::metrics::{ExporterLabels, Metrics, ReasonLabels};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;

/// One exporter's self-metrics handle: cheap to clone, shared by its workers.
#[derive(Clone)]
pub struct Obs {
    id: Arc<str>,
    metrics: Arc<Metrics>,
    labels: ExporterLabels,
    /// healthy / retrying / dropping, for the zpages status
    state: Arc<crate::extension::zpages::observe::DestinationState>,
    /// the queue gauges (requests, bytes, items) of this exporter, resolved once: they are set
    /// on every enqueue, and a label lookup per request showed in the sidecar profile
    queue_size: Gauge,
    queue_bytes: Gauge,
    queue_items: Gauge,
}

impl Obs {
    /// The handle of exporter `id` (its config name, e.g. `otlphttp/tempo`).
    pub fn new(id: &str, metrics: Arc<Metrics>) -> Self {
        let state = metrics.observe.destination(id);
        let labels = ExporterLabels {
            exporter: id.to_string(),
        };
        let queue_size = metrics.exporter_queue_size.get_or_create(&labels).clone();
        let queue_bytes = metrics.exporter_queue_bytes.get_or_create(&labels).clone();
        let queue_items = metrics.queue.items.get_or_create(&labels).clone();
        Obs {
            id: id.into(),
            state,
            queue_size,
            queue_bytes,
            queue_items,
            metrics,
            labels,
        }
    }

    /// The process-wide metrics this handle records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `exporter` label set.
    pub fn labels(&self) -> &ExporterLabels {
        &self.labels
    }

    /// Records the duration of one send attempt (seconds histogram).
    pub fn send_latency(&self, took: Duration) {
        self.metrics
            .exporter_send_latency
            .get_or_create(&self.labels)
            .observe(took.as_secs_f64());
    }

    /// Records a batch of `items` the destination accepted: the items it reported as not
    /// written (OTLP partial success, translator refusals) count as failed and dropped with
    /// their reason, never more than `items`; the rest as sent.
    pub fn accepted(&self, signal: Signal, items: u64, ok: &SendOk) {
        self.state.on_success();
        // a destination's counts are capped at the batch: an answer claiming more rejected
        // items than were sent cannot inflate the drop counters
        let mut left = items;
        for (reason, n) in &ok.dropped {
            let n = (*n).min(left);
            left -= n;
            if n > 0 {
                self.metrics.dropped(&self.id, signal, reason, n);
            }
        }
        let dropped = items - left;
        self.metrics
            .exporter_sent
            .inc(signal, &self.labels, items - dropped);
        self.metrics
            .exporter_send_failed
            .inc(signal, &self.labels, dropped);
        match &ok.message {
            Some(message) => tracing::warn!(
                exporter = %self.id,
                dropped,
                error_message = %crate::telemetry::redact::text(message),
                "destination accepted the batch partially"
            ),
            None if dropped > 0 => {
                tracing::debug!(exporter = %self.id, dropped, "batch accepted, some items not written")
            }
            None => {}
        }
    }

    /// Counts one retry of a batch after a retryable error with `reason`.
    pub fn retried(&self, signal: Signal, reason: &str) {
        self.metrics
            .exporter_retries
            .get_or_create(&ReasonLabels {
                exporter: self.id.to_string(),
                data_type: signal.as_str().into(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A send failed and will be retried after `wait`: the destination is retrying (zpages
    /// status) and the error is logged at debug with credentials masked.
    pub fn retrying(&self, e: &SendError, wait: Duration) {
        let error = crate::telemetry::redact::text(&e.to_string());
        self.state.on_retry(&error);
        tracing::debug!(exporter = %self.id, %error, wait_ms = wait.as_millis() as u64, "send failed, retrying");
    }

    /// A batch is about to be sent for the first time: the exporter tap sees it.
    pub fn sending(&self, batch: &crate::pipeline::payload::Payload) {
        self.metrics.observe.sending(&self.id, batch);
    }

    /// Counts a retry the retry budget did not allow.
    pub fn budget_exhausted(&self) {
        self.metrics.queue.retry_budget_exhausted(&self.id);
    }

    /// Counts a batch dropped for good (permanent error, retries exhausted, shutdown).
    pub fn dropped(&self, signal: Signal, items: u64, reason: &str, e: &SendError) {
        let error = crate::telemetry::redact::text(&e.to_string());
        self.state.on_drop(&error);
        tracing::warn!(exporter = %self.id, items, reason, %error, "dropping batch");
        self.metrics
            .exporter_send_failed
            .inc(signal, &self.labels, items);
        self.metrics.dropped(&self.id, signal, reason, items);
    }

    /// Shutdown interrupted a durable batch: it stays on disk and is sent after the restart.
    pub fn kept(&self, items: u64) {
        tracing::info!(exporter = %self.id, items, "shutdown: batch left in the durable queue");
    }

    /// Counts items refused at enqueue (queue full, storage error, all-or-nothing refusal).
    pub fn enqueue_failed(&self, signal: Signal, items: u64) {
        self.metrics
            .exporter_enqueue_failed
            .inc(signal, &self.labels, items);
    }

    /// Sets the queue gauges (requests, bytes incl. in flight, items) from `queue`.
    pub fn queue_gauges(&self, queue: &Queue) {
        let (reqs, bytes, items) = queue.stats();
        self.queue_size.set(reqs as i64);
        self.queue_bytes.set(bytes as i64);
        self.queue_items.set(items as i64);
    }
}
