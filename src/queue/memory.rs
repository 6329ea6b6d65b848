//! A bounded in-memory queue of payloads, bounded both in bytes and in number of queued
//! requests. Bytes stay counted while a batch is in flight, so memory held for a destination
//! never exceeds its budget, even while it retries.

use crate::config::common::FullPolicy;
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::Offer;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_requests: usize,
}

#[derive(Default)]
struct State {
    /// one FIFO per signal, so a batch is always one signal; `seq` keeps global FIFO order
    queues: [VecDeque<(u64, Payload)>; 3],
    seq: u64,
    /// bytes queued + reserved + in flight
    bytes: u64,
    /// requests queued + reserved (not in flight)
    requests: usize,
    queued_items: u64,
    closed: bool,
}

impl State {
    fn push(&mut self, p: Payload) {
        self.seq += 1;
        self.queued_items += p.items;
        let seq = self.seq;
        self.queues[p.signal as usize].push_back((seq, p));
    }

    fn pop_signal(&mut self, signal: Signal) -> Option<Payload> {
        let (_, p) = self.queues[signal as usize].pop_front()?;
        self.requests -= 1;
        self.queued_items -= p.items;
        Some(p)
    }

    fn pop_oldest(&mut self) -> Option<Payload> {
        let idx = (0..3)
            .filter(|&i| !self.queues[i].is_empty())
            .min_by_key(|&i| self.queues[i][0].0)?;
        self.pop_signal(Signal::ALL[idx])
    }
}

/// One destination's queue.
pub struct MemoryQueue {
    limits: Limits,
    state: Mutex<State>,
    /// wakes consumers when data arrives or the queue closes
    data: Notify,
    /// wakes blocked producers when room frees up
    room: Notify,
}

/// Room held in a queue for a request that is not committed yet. Dropping it releases the room.
pub struct Reservation {
    queue: Arc<MemoryQueue>,
    bytes: u64,
    armed: bool,
}

impl Reservation {
    /// Puts the payload in the queue, using the reserved room.
    pub fn commit(mut self, payload: Payload) {
        self.armed = false;
        let mut st = self.queue.state.lock();
        // the reservation was sized for this payload
        st.bytes = st.bytes - self.bytes + payload.len() as u64;
        st.push(payload);
        drop(st);
        self.queue.data.notify_one();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.queue.release_room(self.bytes, 1);
        }
    }
}

impl MemoryQueue {
    /// An empty queue bounded by `limits` (bytes and requests).
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(MemoryQueue {
            limits,
            state: Mutex::new(State::default()),
            data: Notify::new(),
            room: Notify::new(),
        })
    }

    /// The queue's bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn fits(&self, st: &State, bytes: u64) -> bool {
        // a single payload larger than the whole budget is accepted only into an empty queue
        let bytes_ok = st.bytes + bytes <= self.limits.max_bytes || st.bytes == 0;
        bytes_ok && st.requests < self.limits.max_requests
    }

    /// Reserves room for `bytes`, waiting up to `wait` for room to free up.
    pub async fn reserve(self: &Arc<Self>, bytes: u64, wait: Duration) -> Option<Reservation> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.room.notified();
            {
                let mut st = self.state.lock();
                if st.closed {
                    return None;
                }
                if self.fits(&st, bytes) {
                    st.bytes += bytes;
                    st.requests += 1;
                    return Some(Reservation {
                        queue: self.clone(),
                        bytes,
                        armed: true,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Enqueues under `drop_newest` / `drop_oldest` without ever waiting.
    pub fn offer(&self, payload: Payload, policy: FullPolicy) -> Offer {
        let bytes = payload.len() as u64;
        let mut st = self.state.lock();
        if st.closed {
            return Offer::DroppedNew {
                items: payload.items,
            };
        }
        let mut evicted = 0u64;
        if !self.fits(&st, bytes) {
            if policy != FullPolicy::DropOldest {
                return Offer::DroppedNew {
                    items: payload.items,
                };
            }
            while !self.fits(&st, bytes) {
                match st.pop_oldest() {
                    Some(old) => {
                        st.bytes -= old.len() as u64;
                        evicted += old.items;
                    }
                    None => {
                        return Offer::DroppedNew {
                            items: payload.items + evicted,
                        };
                    }
                }
            }
        }
        st.bytes += bytes;
        st.requests += 1;
        st.push(payload);
        drop(st);
        self.data.notify_one();
        if evicted > 0 {
            Offer::QueuedAfterDropping { items: evicted }
        } else {
            Offer::Queued
        }
    }

    /// Takes the next payload, waiting for one. `None` once the queue is closed and empty.
    /// The payload's bytes stay counted until [`MemoryQueue::done`].
    pub async fn pop(&self) -> Option<Payload> {
        loop {
            let notified = self.data.notified();
            if let Some(p) = self.try_pop() {
                return Some(p);
            }
            if self.state.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Takes the next payload if one is queued.
    pub fn try_pop(&self) -> Option<Payload> {
        let p = self.state.lock().pop_oldest()?;
        // a request slot freed up
        self.room.notify_waiters();
        Some(p)
    }

    /// Takes the next payload of `signal`, waiting for one until `deadline`.
    pub async fn pop_signal_until(
        &self,
        signal: Signal,
        deadline: tokio::time::Instant,
    ) -> Option<Payload> {
        loop {
            let notified = self.data.notified();
            if let Some(p) = self.try_pop_signal(signal) {
                return Some(p);
            }
            if self.state.lock().closed {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Takes the next payload of `signal` if one is queued (to grow a batch).
    pub fn try_pop_signal(&self, signal: Signal) -> Option<Payload> {
        let p = self.state.lock().pop_signal(signal)?;
        self.room.notify_waiters();
        Some(p)
    }

    /// Releases the bytes of payloads that left the queue (delivered or dropped).
    pub fn done(&self, bytes: u64) {
        self.release_room(bytes, 0);
    }

    fn release_room(&self, bytes: u64, requests: usize) {
        let mut st = self.state.lock();
        st.bytes = st.bytes.saturating_sub(bytes);
        st.requests = st.requests.saturating_sub(requests);
        drop(st);
        self.room.notify_waiters();
    }

    /// Stops accepting; consumers drain what is queued, then see `None`.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.data.notify_waiters();
        self.room.notify_waiters();
    }

    /// Drops everything still queued (after the shutdown deadline); returns the items.
    pub fn drain_remaining(&self) -> u64 {
        let mut st = self.state.lock();
        let items = st.queued_items;
        let bytes: u64 = st
            .queues
            .iter()
            .flatten()
            .map(|(_, p)| p.len() as u64)
            .sum();
        for q in st.queues.iter_mut() {
            q.clear();
        }
        st.bytes = st.bytes.saturating_sub(bytes);
        st.requests = 0;
        st.queued_items = 0;
        items
    }

    /// (queued requests, bytes held incl. in flight, queued items)
    pub fn stats(&self) -> (usize, u64, u64) {
        let st = self.state.lock();
        (
            st.queues.iter().map(|q| q.len()).sum(),
            st.bytes,
            st.queued_items,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn p(n: usize, items: u64) -> Payload {
        Payload::new(Signal::Traces, Bytes::from(vec![0u8; n]), items)
    }

    #[tokio::test]
    async fn reserve_commit_pop_done() {
        let q = MemoryQueue::new(Limits {
            max_bytes: 100,
            max_requests: 10,
        });
        let r = q.reserve(60, Duration::ZERO).await.unwrap();
        assert!(
            q.reserve(60, Duration::from_millis(10)).await.is_none(),
            "over budget"
        );
        r.commit(p(60, 3));
        assert_eq!(q.stats(), (1, 60, 3));
        let got = q.pop().await.unwrap();
        assert_eq!(got.items, 3);
        // still in flight: budget held
        assert!(q.reserve(60, Duration::from_millis(10)).await.is_none());
        q.done(60);
        assert!(q.reserve(60, Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn dropped_reservation_releases_room() {
        let q = MemoryQueue::new(Limits {
            max_bytes: 100,
            max_requests: 10,
        });
        let r = q.reserve(100, Duration::ZERO).await.unwrap();
        drop(r);
        assert_eq!(q.stats(), (0, 0, 0));
        assert!(q.reserve(100, Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn blocked_reserve_wakes_when_room_frees() {
        let q = MemoryQueue::new(Limits {
            max_bytes: 100,
            max_requests: 10,
        });
        q.reserve(100, Duration::ZERO)
            .await
            .unwrap()
            .commit(p(100, 1));
        let q2 = q.clone();
        let waiter =
            tokio::spawn(async move { q2.reserve(50, Duration::from_secs(5)).await.is_some() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = q.pop().await.unwrap();
        q.done(got.len() as u64);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn drop_policies() {
        let q = MemoryQueue::new(Limits {
            max_bytes: 100,
            max_requests: 3,
        });
        assert_eq!(q.offer(p(40, 1), FullPolicy::DropNewest), Offer::Queued);
        assert_eq!(q.offer(p(40, 2), FullPolicy::DropNewest), Offer::Queued);
        assert_eq!(
            q.offer(p(40, 3), FullPolicy::DropNewest),
            Offer::DroppedNew { items: 3 }
        );
        assert_eq!(
            q.offer(p(40, 4), FullPolicy::DropOldest),
            Offer::QueuedAfterDropping { items: 1 }
        );
        assert_eq!(q.stats(), (2, 80, 6));
        // request-count bound
        let q = MemoryQueue::new(Limits {
            max_bytes: 1000,
            max_requests: 2,
        });
        q.offer(p(1, 1), FullPolicy::DropOldest);
        q.offer(p(1, 1), FullPolicy::DropOldest);
        assert_eq!(
            q.offer(p(1, 5), FullPolicy::DropOldest),
            Offer::QueuedAfterDropping { items: 1 }
        );
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let q = MemoryQueue::new(Limits {
            max_bytes: 100,
            max_requests: 10,
        });
        q.offer(p(10, 1), FullPolicy::Block);
        q.close();
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_none());
        assert!(q.reserve(1, Duration::ZERO).await.is_none());
    }
}
