//! The queue-consumer layer of the exporter helper: one of an exporter's `num_consumers`
//! workers. It pops a record, lets the [`Batcher`] grow a batch (one worker batches at a time,
//! so batches fill up; sends run concurrently), hands the batch to the [`RetrySender`] and
//! reports the records done to the queue: acked when they left for good, kept (durable
//! queues) when shutdown interrupted them. Past the shutdown deadline a durable queue's
//! worker stops popping: the rest stays on disk for the next start (ARCHITECTURE.md rule 7).

use super::batcher::Batcher;
use super::obs::Obs;
use super::retry_sender::RetrySender;
use crate::queue::Queue;
use std::sync::Arc;
use tokio::sync::watch;

/// One worker of an exporter.
pub struct Consumer {
    /// the exporter's queue
    pub queue: Queue,
    /// this worker's batcher
    pub batcher: Batcher,
    /// the retry layer (shared settings and budget, this worker's own loop)
    pub sender: Arc<RetrySender>,
    /// self-metrics
    pub obs: Obs,
    /// true at the shutdown deadline
    pub hard_stop: watch::Receiver<bool>,
    /// held while a worker builds a batch
    pub collect_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Consumer {
    /// Runs until the queue is closed and empty, or (durable) the shutdown deadline passed.
    pub async fn run(mut self) {
        let durable = self.queue.is_durable();
        loop {
            let guard = self.collect_lock.clone().lock_owned().await;
            let first = match self.batcher.take_pending() {
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
            let (batch, tickets) = self
                .batcher
                .collect(&self.queue, first, &self.hard_stop)
                .await;
            drop(guard);
            let outcome = self.sender.deliver(batch, self.hard_stop.clone()).await;
            self.queue.done(&tickets, outcome.left_queue());
            self.obs.queue_gauges(&self.queue);
        }
    }
}
