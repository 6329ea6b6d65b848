//! The machinery every destination shares (DESIGN.md rules 3-5): one bounded queue, a batcher
//! and `num_consumers` workers per exporter, retries with backoff and jitter, and the
//! Collector's self-metrics. Nothing here is awaited by a receiver except the bounded
//! reservation in [`Exporter::reserve`].

use crate::config::common::{FullPolicy, QueueSettings, RetrySettings};
use crate::exporter::{SendError, Sender, retry};
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::memory::Limits;
use crate::queue::{MemoryQueue, Offer, Reservation};
use crate::telemetry::metrics::{ExporterLabels, Metrics, ReasonLabels};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Per-destination batching (from the pipeline's `batch` processor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchSettings {
    /// How long a started batch waits for more items; zero = take only what is queued.
    pub timeout: Duration,
    pub send_batch_size: u64,
    /// Upper bound of items per batch (0 = none). Requests are never split.
    pub send_batch_max_size: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            timeout: Duration::ZERO,
            send_batch_size: 8192,
            send_batch_max_size: 0,
        }
    }
}

/// One running destination.
pub struct Exporter {
    pub id: String,
    queue: Arc<MemoryQueue>,
    policy: FullPolicy,
    block_timeout: Duration,
    metrics: Arc<Metrics>,
    labels: ExporterLabels,
    workers: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    hard_stop: watch::Sender<bool>,
}

struct WorkerCtx {
    id: String,
    queue: Arc<MemoryQueue>,
    sender: Arc<dyn Sender>,
    retry: RetrySettings,
    batch: BatchSettings,
    metrics: Arc<Metrics>,
    labels: ExporterLabels,
    hard_stop: watch::Receiver<bool>,
    collect_lock: Arc<tokio::sync::Mutex<()>>,
    /// a payload that did not fit the previous batch (send_batch_max_size)
    pending: Option<Payload>,
}

impl Exporter {
    /// Starts the exporter's workers. With `sending_queue.enabled: false` the queue holds a
    /// single request and one consumer sends it (the Collector's synchronous mode, but still
    /// never awaited by the receiver beyond the block timeout).
    pub fn start(
        id: &str,
        sender: Arc<dyn Sender>,
        queue: &QueueSettings,
        retry: RetrySettings,
        batch: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (max_requests, consumers) = if queue.enabled {
            (queue.queue_size.max(1), queue.num_consumers.max(1))
        } else {
            (1, 1)
        };
        let q = MemoryQueue::new(Limits {
            max_bytes: queue.max_bytes.0.max(1),
            max_requests,
        });
        let labels = ExporterLabels {
            exporter: id.to_string(),
        };
        metrics
            .exporter_queue_capacity
            .get_or_create(&labels)
            .set(max_requests as i64);
        metrics
            .exporter_queue_bytes_capacity
            .get_or_create(&labels)
            .set(queue.max_bytes.0 as i64);
        let (hard_stop, hard_rx) = watch::channel(false);
        let exp = Arc::new(Exporter {
            id: id.to_string(),
            queue: q.clone(),
            policy: queue.policy(),
            block_timeout: queue.block_timeout.0,
            metrics: metrics.clone(),
            labels: labels.clone(),
            workers: parking_lot::Mutex::new(Vec::new()),
            hard_stop,
        });
        let mut handles = Vec::new();
        let collect_lock = Arc::new(tokio::sync::Mutex::new(()));
        for _ in 0..consumers {
            let ctx = WorkerCtx {
                id: id.to_string(),
                queue: q.clone(),
                sender: sender.clone(),
                retry: retry.clone(),
                batch,
                metrics: metrics.clone(),
                labels: labels.clone(),
                hard_stop: hard_rx.clone(),
                collect_lock: collect_lock.clone(),
                pending: None,
            };
            handles.push(tokio::spawn(ctx.run()));
        }
        *exp.workers.lock() = handles;
        exp
    }

    pub fn policy(&self) -> FullPolicy {
        self.policy
    }

    /// Reserves room for a request under the `block` policy, waiting up to the block timeout.
    pub async fn reserve(&self, bytes: u64) -> Option<Reservation> {
        self.queue.reserve(bytes, self.block_timeout).await
    }

    /// Commits a reserved request.
    pub fn commit(&self, r: Reservation, payload: Payload) {
        r.commit(payload);
        self.update_gauges();
    }

    /// Enqueues under a drop policy; drops are counted.
    pub fn offer(&self, payload: Payload) {
        let signal = payload.signal;
        match self.queue.offer(payload, self.policy) {
            Offer::Queued => {}
            Offer::DroppedNew { items } => {
                self.metrics
                    .exporter_enqueue_failed
                    .inc(signal, &self.labels, items);
                self.metrics.dropped(&self.id, signal, "queue_full", items);
            }
            Offer::QueuedAfterDropping { items } => {
                // evicted items may be of any signal; they are counted under the new one's type
                self.metrics
                    .exporter_enqueue_failed
                    .inc(signal, &self.labels, items);
                self.metrics
                    .dropped(&self.id, signal, "queue_full_drop_oldest", items);
            }
        }
        self.update_gauges();
    }

    /// Counts a request refused by the all-or-nothing reservation.
    pub fn count_enqueue_failed(&self, signal: Signal, items: u64) {
        self.metrics
            .exporter_enqueue_failed
            .inc(signal, &self.labels, items);
    }

    fn update_gauges(&self) {
        let (reqs, bytes, _) = self.queue.stats();
        self.metrics
            .exporter_queue_size
            .get_or_create(&self.labels)
            .set(reqs as i64);
        self.metrics
            .exporter_queue_bytes
            .get_or_create(&self.labels)
            .set(bytes as i64);
    }

    /// (queued requests, bytes held incl. in flight, queued items)
    pub fn queue_stats(&self) -> (usize, u64, u64) {
        self.queue.stats()
    }

    /// Drains the queue: stop accepting, let workers send what is queued until `deadline`,
    /// then abort retries and count what is left. Returns the items not delivered.
    pub async fn shutdown(&self, deadline: Instant) -> u64 {
        self.queue.close();
        let handles: Vec<_> = std::mem::take(&mut *self.workers.lock());
        let wait_all = futures::future::join_all(handles);
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::pin!(wait_all);
        if tokio::time::timeout(remaining, &mut wait_all)
            .await
            .is_err()
        {
            let _ = self.hard_stop.send(true);
            // workers stop retrying and count their in-flight batches
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut wait_all).await;
        }
        let left = self.queue.drain_remaining();
        if left > 0 {
            tracing::warn!(exporter = %self.id, items = left, "shutdown deadline reached; queued items not delivered");
        }
        self.update_gauges();
        left
    }
}

impl WorkerCtx {
    async fn run(mut self) {
        loop {
            // one worker builds a batch at a time, so batches fill up; sends run concurrently
            let guard = self.collect_lock.clone().lock_owned().await;
            let first = match self.pending.take() {
                Some(p) => p,
                None => match self.queue.pop().await {
                    Some(p) => p,
                    None => break,
                },
            };
            let batch = self.collect(first).await;
            drop(guard);
            let bytes = batch.len() as u64;
            self.deliver(batch).await;
            self.queue.done(bytes);
            let (reqs, qbytes, _) = self.queue.stats();
            self.metrics
                .exporter_queue_size
                .get_or_create(&self.labels)
                .set(reqs as i64);
            self.metrics
                .exporter_queue_bytes
                .get_or_create(&self.labels)
                .set(qbytes as i64);
        }
    }

    /// Grows a batch from `first` with queued payloads of the same signal, by concatenation.
    async fn collect(&mut self, first: Payload) -> Payload {
        let signal = first.signal;
        let mut parts = vec![first];
        let mut items: u64 = parts[0].items;
        let deadline = tokio::time::Instant::now() + self.batch.timeout;
        let max = if self.batch.send_batch_max_size > 0 {
            self.batch.send_batch_max_size
        } else {
            u64::MAX
        };
        while items < self.batch.send_batch_size {
            let next = match self.queue.try_pop_signal(signal) {
                Some(p) => Some(p),
                None if self.batch.timeout.is_zero() => None,
                None => {
                    if *self.hard_stop.borrow() {
                        None
                    } else {
                        self.queue.pop_signal_until(signal, deadline).await
                    }
                }
            };
            let Some(p) = next else { break };
            if items + p.items > max {
                // does not fit: it starts the next batch
                self.pending = Some(p);
                break;
            }
            items += p.items;
            parts.push(p);
        }
        concat(signal, parts)
    }

    async fn deliver(&self, batch: Payload) {
        let signal = batch.signal;
        let items = batch.items;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut hard_stop = self.hard_stop.clone();
        loop {
            let t0 = Instant::now();
            let result = tokio::select! {
                r = self.sender.send(batch.clone()) => r,
                _ = wait_true(&mut hard_stop) => Err(SendError::permanent("shutdown", "shutdown deadline reached during send")),
            };
            self.metrics
                .exporter_send_latency
                .get_or_create(&self.labels)
                .observe(t0.elapsed().as_secs_f64());
            match result {
                Ok(ok) => {
                    let dropped: u64 = ok.dropped.iter().map(|(_, n)| *n).sum::<u64>().min(items);
                    self.metrics
                        .exporter_sent
                        .inc(signal, &self.labels, items - dropped);
                    for (reason, n) in &ok.dropped {
                        self.metrics.dropped(&self.id, signal, reason, *n);
                    }
                    self.metrics
                        .exporter_send_failed
                        .inc(signal, &self.labels, dropped);
                    if dropped > 0 {
                        tracing::debug!(exporter = %self.id, dropped, "destination accepted the batch partially");
                    }
                    return;
                }
                Err(e) if e.retryable && self.retry.enabled && !*hard_stop.borrow() => {
                    let wait = retry::backoff(&self.retry, attempt, e.retry_after);
                    let max_elapsed = self.retry.max_elapsed_time.0;
                    if !max_elapsed.is_zero() && started.elapsed() + wait > max_elapsed {
                        self.drop_batch(signal, items, "retries_exhausted", &e);
                        return;
                    }
                    self.metrics
                        .exporter_retries
                        .get_or_create(&ReasonLabels {
                            exporter: self.id.clone(),
                            data_type: signal.as_str().into(),
                            reason: e.reason.clone(),
                        })
                        .inc();
                    tracing::debug!(exporter = %self.id, error = %e, wait_ms = wait.as_millis() as u64, "send failed, retrying");
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wait_true(&mut hard_stop) => {
                            self.drop_batch(signal, items, "shutdown", &e);
                            return;
                        }
                    }
                }
                Err(e) => {
                    let reason = if e.retryable && *hard_stop.borrow() {
                        "shutdown".to_string()
                    } else {
                        e.reason.clone()
                    };
                    self.drop_batch(signal, items, &reason, &e);
                    return;
                }
            }
        }
    }

    fn drop_batch(&self, signal: Signal, items: u64, reason: &str, e: &SendError) {
        tracing::warn!(exporter = %self.id, items, reason, error = %e, "dropping batch");
        self.metrics
            .exporter_send_failed
            .inc(signal, &self.labels, items);
        self.metrics.dropped(&self.id, signal, reason, items);
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // sender gone: never fires
            std::future::pending::<()>().await;
        }
    }
}

/// Concatenates encoded requests of one signal into one request (a single repeated field).
pub fn concat(signal: Signal, parts: Vec<Payload>) -> Payload {
    if parts.len() == 1 {
        return parts
            .into_iter()
            .next()
            .unwrap_or_else(|| Payload::new(signal, Default::default(), 0));
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    let mut items = 0;
    for p in parts {
        buf.extend_from_slice(&p.bytes);
        items += p.items;
    }
    Payload::new(signal, buf.freeze(), items)
}
