//! The batcher layer of the exporter helper: grows a batch from the first popped record with
//! queued records of the same signal, by concatenating their encoded requests (a repeated
//! field concatenates on the wire, ARCHITECTURE.md rule 1). Settings come from the pipeline's
//! `batch` processor; requests are never split.

use crate::pipeline::payload::{Payload, Signal};
use crate::queue::{Popped, Queue, Ticket};
use bytes::BytesMut;
use std::time::Duration;
use tokio::sync::watch;

/// Per-destination batching (from the pipeline's `batch` processor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchSettings {
    /// How long a started batch waits for more items; zero = take only what is queued.
    pub timeout: Duration,
    /// A batch is sent once it holds at least this many items (spans, points, log records).
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

/// One worker's batcher: the settings and the record that did not fit the previous batch.
pub struct Batcher {
    settings: BatchSettings,
    /// a record that did not fit the previous batch (`send_batch_max_size`); it starts the next
    pending: Option<Popped>,
}

impl Batcher {
    /// A batcher with nothing pending.
    pub fn new(settings: BatchSettings) -> Self {
        Batcher {
            settings,
            pending: None,
        }
    }

    /// Takes the record left over from the previous batch, if any.
    pub fn take_pending(&mut self) -> Option<Popped> {
        self.pending.take()
    }

    /// Grows a batch from `first` with queued records of the same signal until it holds
    /// `send_batch_size` items, the batch timeout passes (not waited for when stopping), or
    /// the next record would pass `send_batch_max_size` (it is kept for the next batch).
    /// `stopping` is true past the shutdown deadline. Returns the batch and the tickets of the
    /// records in it.
    pub async fn collect(
        &mut self,
        queue: &Queue,
        first: Popped,
        stopping: &watch::Receiver<bool>,
    ) -> (Payload, Vec<Ticket>) {
        let signal = first.payload.signal;
        let mut tickets = vec![first.ticket];
        let mut parts = vec![first.payload];
        let mut items: u64 = parts[0].items;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let max = if self.settings.send_batch_max_size > 0 {
            self.settings.send_batch_max_size
        } else {
            u64::MAX
        };
        while items < self.settings.send_batch_size {
            let next = match queue.try_pop_signal(signal).await {
                Some(p) => Some(p),
                None if self.settings.timeout.is_zero() || *stopping.borrow() => None,
                None => queue.pop_signal_until(signal, deadline).await,
            };
            let Some(p) = next else { break };
            if items + p.payload.items > max {
                self.pending = Some(p);
                break;
            }
            items += p.payload.items;
            tickets.push(p.ticket);
            parts.push(p.payload);
        }
        (concat(signal, parts), tickets)
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
