//! One running destination: its queue and the workers of the exporter helper
//! (`crate::exporter::helper`: queue consumer, batcher, retry, observability) around its
//! [`Sender`] (ARCHITECTURE.md rules 3-5). Nothing here is awaited by a receiver except the
//! bounded reservation in [`Exporter::reserve`].

use crate::config::common::{FullPolicy, QueueSettings, RetrySettings};
use crate::exporter::Sender;
use crate::exporter::helper::batcher::Batcher;
pub use crate::exporter::helper::batcher::{BatchSettings, concat};
use crate::exporter::helper::consumer::Consumer;
use crate::exporter::helper::obs::Obs;
use crate::exporter::helper::retry_sender::RetrySender;
use crate::exporter::retry_budget::RetryBudget;
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::durable::{DurableQueue, FileStorageConfig};
use crate::queue::memory::Limits;
use crate::queue::{MemoryQueue, Offer, Queue, QueueError, Reservation};
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One running destination.
pub struct Exporter {
    /// The exporter's component id (`otlphttp/tempo`).
    pub id: String,
    queue: Queue,
    policy: FullPolicy,
    block_timeout: Duration,
    obs: Obs,
    workers: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    hard_stop: watch::Sender<bool>,
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
        let obs = Obs::new(id, metrics.clone());
        metrics
            .exporter_queue_capacity
            .get_or_create(obs.labels())
            .set(max_requests as i64);
        metrics
            .exporter_queue_bytes_capacity
            .get_or_create(obs.labels())
            .set(queue.max_bytes.0 as i64);
        let (hard_stop, hard_rx) = watch::channel(false);
        let exp = Arc::new(Exporter {
            id: id.to_string(),
            queue: q.clone(),
            policy: queue.policy(),
            block_timeout: queue.block_timeout.0,
            obs: obs.clone(),
            workers: parking_lot::Mutex::new(Vec::new()),
            hard_stop,
        });
        let retry_sender = Arc::new(RetrySender::new(
            sender,
            retry,
            budget,
            q.is_durable(),
            obs.clone(),
        ));
        let collect_lock = Arc::new(tokio::sync::Mutex::new(()));
        let handles = (0..consumers)
            .map(|_| {
                let consumer = Consumer {
                    queue: q.clone(),
                    batcher: Batcher::new(batch),
                    sender: retry_sender.clone(),
                    obs: obs.clone(),
                    hard_stop: hard_rx.clone(),
                    collect_lock: collect_lock.clone(),
                };
                tokio::spawn(consumer.run())
            })
            .collect();
        *exp.workers.lock() = handles;
        exp
    }

    /// What a full queue does with a new request (`sending_queue.full_policy`).
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
        self.obs
            .metrics()
            .queue
            .durable_duplicate_risk(&self.id, items);
    }

    /// Enqueues under a drop policy; drops are counted. Returns false when the item did not
    /// get into the queue (dropped).
    pub async fn offer(&self, payload: Payload) -> bool {
        let signal = payload.signal;
        let offered = self.queue.offer(payload, self.policy).await;
        let queued = matches!(offered, Offer::Queued | Offer::QueuedAfterDropping { .. });
        let metrics = self.obs.metrics();
        match offered {
            Offer::Queued => {}
            Offer::DroppedNew { items } => {
                self.obs.enqueue_failed(signal, items);
                metrics.dropped(&self.id, signal, "queue_full", items);
            }
            Offer::QueuedAfterDropping { items } => {
                // evicted items may be of any signal; they are counted under the new one's type
                self.obs.enqueue_failed(signal, items);
                metrics.dropped(&self.id, signal, "queue_full_drop_oldest", items);
            }
            Offer::Failed { items, evicted } => {
                self.obs.enqueue_failed(signal, items + evicted);
                metrics.dropped(&self.id, signal, "storage_error", items);
                metrics.dropped(&self.id, signal, "queue_full_drop_oldest", evicted);
            }
        }
        self.update_gauges();
        queued
    }

    /// Counts a request refused by the all-or-nothing reservation.
    pub fn count_enqueue_failed(&self, signal: Signal, items: u64) {
        self.obs.enqueue_failed(signal, items);
    }

    fn update_gauges(&self) {
        self.obs.queue_gauges(&self.queue);
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
