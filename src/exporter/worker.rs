//! The machinery every destination shares (ARCHITECTURE.md rules 3-5): one bounded queue, a batcher
//! and `num_consumers` workers per exporter, retries with backoff and jitter, and the
//! Collector's self-metrics. Nothing here is awaited by a receiver except the bounded
//! reservation in [`Exporter::reserve`].

use crate::config::common::{FullPolicy, QueueSettings, RetrySettings};
use crate::exporter::retry_budget::RetryBudget;
use crate::exporter::{SendError, Sender, retry};
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::durable::{DurableQueue, FileStorageConfig};
use crate::queue::memory::Limits;
use crate::queue::{MemoryQueue, Offer, Queue, QueueError, Reservation, Ticket};
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
    queue: Queue,
    policy: FullPolicy,
    block_timeout: Duration,
    metrics: Arc<Metrics>,
    labels: ExporterLabels,
    workers: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    hard_stop: watch::Sender<bool>,
}

struct WorkerCtx {
    id: String,
    queue: Queue,
    budget: Option<Arc<RetryBudget>>,
    sender: Arc<dyn Sender>,
    retry: RetrySettings,
    batch: BatchSettings,
    metrics: Arc<Metrics>,
    labels: ExporterLabels,
    hard_stop: watch::Receiver<bool>,
    collect_lock: Arc<tokio::sync::Mutex<()>>,
    /// a payload that did not fit the previous batch (send_batch_max_size)
    pending: Option<crate::queue::Popped>,
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
        let q = Queue::Memory(MemoryQueue::new(limits(queue)));
        Self::start_with(id, sender, q, queue, retry, batch, metrics)
    }

    /// Like [`Exporter::start`], with a durable queue in the `file_storage` extension's
    /// directory (`sending_queue.storage`). Fails when the queue directory cannot be opened.
    pub fn start_durable(
        id: &str,
        sender: Arc<dyn Sender>,
        queue: &QueueSettings,
        storage: &FileStorageConfig,
        retry: RetrySettings,
        batch: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        // a durable queue is bounded by max_bytes only: queue_size (requests) would cap a
        // 1GiB backlog at a few MB during an outage
        let lim = Limits {
            max_requests: usize::MAX,
            ..limits(queue)
        };
        let q = DurableQueue::open(id, storage, lim, metrics.clone()).map_err(|e| e.to_string())?;
        Ok(Self::start_with(
            id,
            sender,
            Queue::Durable(q),
            queue,
            retry,
            batch,
            metrics,
        ))
    }

    fn start_with(
        id: &str,
        sender: Arc<dyn Sender>,
        q: Queue,
        queue: &QueueSettings,
        retry: RetrySettings,
        batch: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let max_requests = limits(queue).max_requests;
        let consumers = if queue.enabled {
            queue.num_consumers.max(1)
        } else {
            1
        };
        let budget = RetryBudget::new(&retry.retry_budget).map(Arc::new);
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
                budget: budget.clone(),
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

    /// True when the queue is on disk: its commits must be awaited before answering.
    pub fn is_durable(&self) -> bool {
        self.queue.is_durable()
    }

    /// The durable queue, if this exporter has one (tests, admin).
    pub fn durable_queue(&self) -> Option<&Arc<DurableQueue>> {
        match &self.queue {
            Queue::Durable(q) => Some(q),
            Queue::Memory(_) => None,
        }
    }

    /// Reserves room for a request under the `block` policy, waiting up to the block timeout.
    pub async fn reserve(&self, bytes: u64) -> Option<Reservation> {
        self.queue.reserve(bytes, self.block_timeout).await
    }

    /// Commits a reserved request (for a durable queue: once it is on disk). On error the
    /// reservation is released and nothing was queued.
    pub async fn commit(&self, r: Reservation, payload: Payload) -> Result<(), QueueError> {
        let (signal, items) = (payload.signal, payload.items);
        let res = self.queue.commit(r, payload).await;
        if res.is_err() {
            self.count_enqueue_failed(signal, items);
        }
        self.update_gauges();
        res
    }

    /// Counts items this durable queue took for a request that was then refused because
    /// another durable destination failed: a client retry may deliver them twice here.
    pub fn count_duplicate_risk(&self, items: u64) {
        self.metrics.queue.durable_duplicate_risk(&self.id, items);
    }

    /// Enqueues under a drop policy; drops are counted. Returns false when the item did not
    /// get into the queue (dropped).
    pub async fn offer(&self, payload: Payload) -> bool {
        let signal = payload.signal;
        let offered = self.queue.offer(payload, self.policy).await;
        let queued = matches!(offered, Offer::Queued | Offer::QueuedAfterDropping { .. });
        match offered {
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
            Offer::Failed { items, evicted } => {
                self.metrics
                    .exporter_enqueue_failed
                    .inc(signal, &self.labels, items + evicted);
                self.metrics
                    .dropped(&self.id, signal, "storage_error", items);
                self.metrics
                    .dropped(&self.id, signal, "queue_full_drop_oldest", evicted);
            }
        }
        self.update_gauges();
        queued
    }

    /// Counts a request refused by the all-or-nothing reservation.
    pub fn count_enqueue_failed(&self, signal: Signal, items: u64) {
        self.metrics
            .exporter_enqueue_failed
            .inc(signal, &self.labels, items);
    }

    fn update_gauges(&self) {
        set_gauges(&self.metrics, &self.labels, &self.queue);
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
        let (left, kept) = self.queue.finish().await;
        if left > 0 {
            tracing::warn!(exporter = %self.id, items = left, "shutdown deadline reached; queued items not delivered");
        }
        if kept > 0 {
            tracing::info!(exporter = %self.id, items = kept, "shutdown: undelivered items kept in the durable queue for the next start");
        }
        self.update_gauges();
        left
    }
}

impl WorkerCtx {
    async fn run(mut self) {
        let durable = self.queue.is_durable();
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
            if durable && *self.hard_stop.borrow() {
                // past the deadline a durable queue keeps the rest for the next start
                self.queue.done(&[first.ticket], false);
                break;
            }
            let (batch, tickets) = self.collect(first).await;
            drop(guard);
            let left = self.deliver(batch).await;
            self.queue.done(&tickets, left);
            set_gauges(&self.metrics, &self.labels, &self.queue);
        }
    }

    /// Grows a batch from `first` with queued payloads of the same signal, by concatenation.
    async fn collect(&mut self, first: crate::queue::Popped) -> (Payload, Vec<Ticket>) {
        let signal = first.payload.signal;
        let mut tickets = vec![first.ticket];
        let mut parts = vec![first.payload];
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
            if items + p.payload.items > max {
                // does not fit: it starts the next batch
                self.pending = Some(p);
                break;
            }
            items += p.payload.items;
            tickets.push(p.ticket);
            parts.push(p.payload);
        }
        (concat(signal, parts), tickets)
    }

    /// Sends one batch with retries. Returns true when the batch left the queue for good
    /// (delivered, or dropped after a permanent error or exhausted retries); false when the
    /// shutdown deadline interrupted it (a durable queue keeps it for the next start).
    async fn deliver(&self, batch: Payload) -> bool {
        let signal = batch.signal;
        let items = batch.items;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut hard_stop = self.hard_stop.clone();
        let durable = self.queue.is_durable();
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
                    if let Some(b) = &self.budget {
                        b.on_success();
                    }
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
                    return true;
                }
                Err(e) if e.retryable && self.retry.enabled && !*hard_stop.borrow() => {
                    let wait = retry::backoff(&self.retry, attempt, e.retry_after);
                    let max_elapsed = self.retry.max_elapsed_time.0;
                    // a durable queue keeps retrying: its bound is max_bytes, not time
                    // (collector#15324 lost hours of an outage to max_elapsed_time)
                    if !durable && !max_elapsed.is_zero() && started.elapsed() + wait > max_elapsed
                    {
                        self.drop_batch(signal, items, "retries_exhausted", &e);
                        return true;
                    }
                    tracing::debug!(exporter = %self.id, error = %e, wait_ms = wait.as_millis() as u64, "send failed, retrying");
                    attempt += 1;
                    let mut wait = wait;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = wait_true(&mut hard_stop) => {
                                if durable {
                                    self.abandon(signal, items);
                                    return false;
                                }
                                self.drop_batch(signal, items, "shutdown", &e);
                                return true;
                            }
                        }
                        match &self.budget {
                            Some(b) if !b.try_retry() => {
                                self.metrics.queue.retry_budget_exhausted(&self.id);
                                wait = retry::backoff(&self.retry, attempt, None)
                                    .max(Duration::from_millis(100));
                            }
                            _ => break,
                        }
                    }
                    self.metrics
                        .exporter_retries
                        .get_or_create(&ReasonLabels {
                            exporter: self.id.clone(),
                            data_type: signal.as_str().into(),
                            reason: e.reason.clone(),
                        })
                        .inc();
                }
                Err(e) => {
                    let stopping = *hard_stop.borrow();
                    if durable && stopping && (e.retryable || e.reason == "shutdown") {
                        self.abandon(signal, items);
                        return false;
                    }
                    let reason = if e.retryable && stopping {
                        "shutdown".to_string()
                    } else {
                        e.reason.clone()
                    };
                    self.drop_batch(signal, items, &reason, &e);
                    return true;
                }
            }
        }
    }

    /// Shutdown interrupted a durable batch: it stays on disk and is sent after the restart.
    fn abandon(&self, _signal: Signal, items: u64) {
        tracing::info!(exporter = %self.id, items, "shutdown: batch left in the durable queue");
    }

    fn drop_batch(&self, signal: Signal, items: u64, reason: &str, e: &SendError) {
        tracing::warn!(exporter = %self.id, items, reason, error = %e, "dropping batch");
        self.metrics
            .exporter_send_failed
            .inc(signal, &self.labels, items);
        self.metrics.dropped(&self.id, signal, reason, items);
    }
}

fn limits(queue: &QueueSettings) -> Limits {
    Limits {
        max_bytes: queue.max_bytes.0.max(1),
        max_requests: if queue.enabled {
            queue.queue_size.max(1)
        } else {
            1
        },
    }
}

fn set_gauges(metrics: &Metrics, labels: &ExporterLabels, queue: &Queue) {
    let (reqs, bytes, items) = queue.stats();
    metrics
        .exporter_queue_size
        .get_or_create(labels)
        .set(reqs as i64);
    metrics
        .exporter_queue_bytes
        .get_or_create(labels)
        .set(bytes as i64);
    metrics.queue.items.get_or_create(labels).set(items as i64);
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
