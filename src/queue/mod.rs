//! Per-destination queues behind one small interface (ARCHITECTURE.md rule 4), so receivers, the
//! router and exporter workers never know which kind they use. The router reserves room
//! (all-or-nothing across `block` destinations), then commits, or offers under a drop policy.
//! Exporter workers pop records, batch them, and report them [`Queue::done`] once the
//! destination took them (or dropped them for good), with the [`Ticket`]s they popped.
//!
//! Two kinds: [`MemoryQueue`] and [`DurableQueue`] (a write-ahead log on disk whose commit
//! returns only once the record is durable, and whose records leave only when acked).

pub mod durable;
pub(crate) mod memory;

use crate::config::common::FullPolicy;
use crate::pipeline::payload::{Payload, Signal};
pub use durable::DurableQueue;
pub use memory::MemoryQueue;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// What happened to a payload offered under a drop policy.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Queued without dropping anything.
    Queued,
    /// The new payload was dropped (`drop_newest`, or nothing old left to evict).
    DroppedNew {
        /// Items (spans, data points, log records) in the dropped payload.
        items: u64,
    },
    /// Queued after evicting older payloads.
    QueuedAfterDropping {
        /// Items in the evicted payloads.
        items: u64,
    },
    /// A durable queue could not write it (disk full, I/O error): dropped, after evicting
    /// `evicted` older items.
    Failed {
        /// Items in the payload that could not be written.
        items: u64,
        /// Items in the older payloads evicted before the write failed.
        evicted: u64,
    },
}

/// Why a commit failed. Always retryable for the client.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum QueueError {
    /// The durable queue's write-ahead log could not be written (the I/O error's text).
    #[error("durable queue write failed: {0}")]
    Storage(String),
    /// The queue is shutting down.
    #[error("queue closed")]
    Closed,
}

/// Identifies a popped record until it is done: its bytes and, in a durable queue, its
/// sequence number (what the ack names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Encoded size of the record's payload, in bytes (what it holds of the queue's `max_bytes`).
    pub bytes: u64,
    /// Sequence number in a durable queue's log; `None` in a memory queue.
    pub seq: Option<u64>,
}

/// A record taken by a worker.
#[derive(Debug)]
pub struct Popped {
    /// The request as queued.
    pub payload: Payload,
    /// What to hand back to [`Queue::done`].
    pub ticket: Ticket,
}

/// A destination's queue.
#[derive(Clone)]
pub enum Queue {
    /// In memory: lost on restart.
    Memory(Arc<MemoryQueue>),
    /// On disk (`sending_queue.storage`): survives a restart.
    Durable(Arc<DurableQueue>),
}

/// Room reserved for one request. Dropping it releases the room.
pub enum Reservation {
    /// Room in a memory queue.
    Memory(memory::Reservation),
    /// Room in a durable queue.
    Durable(durable::DurableReservation),
}

impl Queue {
    /// True for a queue on disk.
    pub fn is_durable(&self) -> bool {
        matches!(self, Queue::Durable(_))
    }

    /// Reserves room for one request of `bytes` encoded bytes, waiting up to `wait` for room to
    /// free up; `None` when there is still none (the queue is full) or the queue is closed.
    pub async fn reserve(&self, bytes: u64, wait: Duration) -> Option<Reservation> {
        match self {
            Queue::Memory(q) => q.reserve(bytes, wait).await.map(Reservation::Memory),
            Queue::Durable(q) => q.reserve(bytes, wait).await.map(Reservation::Durable),
        }
    }

    /// Queues a reserved payload. For a durable queue this returns once it is on disk.
    pub async fn commit(&self, r: Reservation, payload: Payload) -> Result<(), QueueError> {
        match r {
            Reservation::Memory(r) => {
                r.commit(payload);
                Ok(())
            }
            Reservation::Durable(r) => r.commit(payload).await,
        }
    }

    /// Queues `payload` without waiting, applying `policy` (`drop_newest` / `drop_oldest`) when
    /// the queue is full.
    pub async fn offer(&self, payload: Payload, policy: FullPolicy) -> Offer {
        match self {
            Queue::Memory(q) => q.offer(payload, policy),
            Queue::Durable(q) => q.offer(payload, policy).await,
        }
    }

    /// Takes the next record of any signal, waiting for one; `None` once the queue is closed and
    /// empty. Its bytes stay counted until [`Queue::done`].
    pub async fn pop(&self) -> Option<Popped> {
        match self {
            Queue::Memory(q) => q.pop().await.map(mem_popped),
            Queue::Durable(q) => q.pop().await,
        }
    }

    /// Takes the next record of `signal` if one is queued, without waiting for one (a durable
    /// queue may read its payload back from disk, on the blocking pool).
    pub async fn try_pop_signal(&self, signal: Signal) -> Option<Popped> {
        match self {
            Queue::Memory(q) => q.try_pop_signal(signal).map(mem_popped),
            Queue::Durable(q) => q.pop_ready_signal(signal).await,
        }
    }

    /// Takes the next record of `signal`, waiting for one until `deadline` (batch timeout).
    pub async fn pop_signal_until(
        &self,
        signal: Signal,
        deadline: tokio::time::Instant,
    ) -> Option<Popped> {
        match self {
            Queue::Memory(q) => q.pop_signal_until(signal, deadline).await.map(mem_popped),
            Queue::Durable(q) => q.pop_signal_until(signal, deadline).await,
        }
    }

    /// Releases popped records. `left`: delivered, or dropped for good (durable queues ack
    /// them); `false` only when shutdown interrupted the delivery (durable queues keep them).
    pub fn done(&self, tickets: &[Ticket], left: bool) {
        match self {
            Queue::Memory(q) => q.done(tickets.iter().map(|t| t.bytes).sum()),
            Queue::Durable(q) => q.done(tickets, left),
        }
    }

    /// Stops accepting; consumers drain what is queued, then see `None`.
    pub fn close(&self) {
        match self {
            Queue::Memory(q) => q.close(),
            Queue::Durable(q) => q.close(),
        }
    }

    /// After the shutdown deadline: returns (items lost, items kept on disk for next start).
    pub async fn finish(&self) -> (u64, u64) {
        match self {
            Queue::Memory(q) => (q.drain_remaining(), 0),
            Queue::Durable(q) => {
                let kept = q.remaining();
                q.finish().await;
                (0, kept)
            }
        }
    }

    /// (queued requests, bytes held incl. in flight, queued items)
    pub fn stats(&self) -> (usize, u64, u64) {
        match self {
            Queue::Memory(q) => q.stats(),
            Queue::Durable(q) => q.stats(),
        }
    }
}

fn mem_popped(p: Payload) -> Popped {
    Popped {
        ticket: Ticket {
            bytes: p.len() as u64,
            seq: None,
        },
        payload: p,
    }
}
