//! Tap points at receivers (after wire validation, once the request was accepted) and at
//! exporters (each batch as it is first sent). Nothing on the data path waits for a viewer:
//! with no subscriber a tap costs one atomic load; with subscribers, each gets a clone of
//! the request (a refcount) through its own bounded buffer, and a subscriber whose buffer is
//! full loses the request, counted and reported to it as a gap.

use super::filter::{Kind, Point};
use crate::pipeline::payload::{Payload, Signal};
use parking_lot::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// One request seen at a tap point.
#[derive(Debug, Clone)]
pub struct Tapped {
    pub kind: Kind,
    pub component: Arc<str>,
    pub observed_time_unix_nano: u64,
    pub payload: Payload,
}

/// Per-subscriber bounds.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Requests buffered for a viewer before it loses them.
    pub requests: usize,
    /// Bytes of requests buffered for a viewer before it loses them.
    pub bytes: u64,
    /// Viewers at once; more are refused.
    pub subscribers: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            requests: 256,
            bytes: 16 << 20,
            subscribers: 16,
        }
    }
}

struct Sub {
    id: u64,
    point: Point,
    signal: Option<Signal>,
    tx: mpsc::Sender<Tapped>,
    /// bytes of requests in the channel
    pending: AtomicU64,
    lost_items: AtomicU64,
    lost_requests: AtomicU64,
}

/// All subscribers of one process.
#[derive(Default)]
pub struct Hub {
    active: AtomicUsize,
    subs: RwLock<Vec<Arc<Sub>>>,
    next: AtomicU64,
    bounds: RwLock<Bounds>,
    /// items lost by slow viewers, all subscribers together (for the status page)
    lost_total: AtomicU64,
}

/// Why a viewer was not subscribed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubscribeError {
    #[error("too many tap viewers ({0}); try again later")]
    TooMany(usize),
}

/// What a viewer receives next.
#[derive(Debug)]
pub enum Event {
    Data(Tapped),
    /// Items (and requests) lost since the previous event because the viewer was slow.
    Gap {
        items: u64,
        requests: u64,
    },
}

/// A viewer's end. Dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<Hub>,
    sub: Arc<Sub>,
    rx: mpsc::Receiver<Tapped>,
}

impl Hub {
    pub fn set_bounds(&self, b: Bounds) {
        *self.bounds.write() = b;
    }

    /// True when at least one viewer is subscribed (one atomic load).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Viewers subscribed now.
    pub fn viewers(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Items lost by slow viewers since start.
    pub fn lost_items(&self) -> u64 {
        self.lost_total.load(Ordering::Relaxed)
    }

    /// Offers a request seen at a tap point to every interested viewer; never waits.
    #[inline]
    pub fn publish(&self, kind: Kind, component: &str, payload: &Payload, now_unix_nano: u64) {
        if !self.active() {
            return;
        }
        self.publish_slow(kind, component, payload, now_unix_nano);
    }

    #[cold]
    fn publish_slow(&self, kind: Kind, component: &str, payload: &Payload, now: u64) {
        let subs = self.subs.read();
        let max_bytes = self.bounds.read().bytes;
        let mut name: Option<Arc<str>> = None;
        for s in subs.iter() {
            if !s.point.wants(kind, component) || s.signal.is_some_and(|x| x != payload.signal) {
                continue;
            }
            let len = payload.len() as u64;
            let held = s.pending.load(Ordering::Relaxed);
            let lost = if held + len > max_bytes && held > 0 {
                true
            } else {
                let t = Tapped {
                    kind,
                    component: name.get_or_insert_with(|| component.into()).clone(),
                    observed_time_unix_nano: now,
                    payload: payload.clone(),
                };
                match s.tx.try_send(t) {
                    Ok(()) => {
                        s.pending.fetch_add(len, Ordering::Relaxed);
                        false
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => true,
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            };
            if lost {
                s.lost_items.fetch_add(payload.items, Ordering::Relaxed);
                s.lost_requests.fetch_add(1, Ordering::Relaxed);
                self.lost_total.fetch_add(payload.items, Ordering::Relaxed);
            }
        }
    }

    /// Subscribes a viewer to one tap point (and optionally one signal).
    pub fn subscribe(
        self: &Arc<Self>,
        point: Point,
        signal: Option<Signal>,
    ) -> Result<Subscription, SubscribeError> {
        let b = *self.bounds.read();
        let mut subs = self.subs.write();
        if subs.len() >= b.subscribers {
            return Err(SubscribeError::TooMany(b.subscribers));
        }
        let (tx, rx) = mpsc::channel(b.requests.max(1));
        let sub = Arc::new(Sub {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            point,
            signal,
            tx,
            pending: AtomicU64::new(0),
            lost_items: AtomicU64::new(0),
            lost_requests: AtomicU64::new(0),
        });
        subs.push(sub.clone());
        self.active.store(subs.len(), Ordering::Relaxed);
        Ok(Subscription {
            hub: self.clone(),
            sub,
            rx,
        })
    }
}

impl Subscription {
    /// The next event: a gap marker first when requests were lost since the last call
    /// (the lost requests came after those already delivered). `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(g) = self.take_gap() {
            return Some(g);
        }
        let t = self.rx.recv().await?;
        self.sub
            .pending
            .fetch_sub(t.payload.len() as u64, Ordering::Relaxed);
        Some(Event::Data(t))
    }

    fn take_gap(&mut self) -> Option<Event> {
        let items = self.sub.lost_items.swap(0, Ordering::Relaxed);
        let requests = self.sub.lost_requests.swap(0, Ordering::Relaxed);
        (requests > 0).then_some(Event::Gap { items, requests })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subs.write();
        subs.retain(|s| s.id != self.sub.id);
        self.hub.active.store(subs.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: u64, len: usize) -> Payload {
        Payload::new(Signal::Traces, bytes::Bytes::from(vec![0u8; len]), items)
    }

    #[tokio::test]
    async fn slow_viewer_loses_items_as_a_counted_gap() {
        let hub = Arc::new(Hub::default());
        hub.set_bounds(Bounds {
            requests: 2,
            bytes: 1 << 20,
            subscribers: 4,
        });
        assert!(!hub.active());
        let mut sub = hub.subscribe(Point::Receivers, None).unwrap();
        assert!(hub.active());
        for _ in 0..5 {
            hub.publish(Kind::Receiver, "otlp", &payload(3, 10), 1);
        }
        // two buffered, three lost (9 items)
        assert!(matches!(
            sub.next().await,
            Some(Event::Gap {
                items: 9,
                requests: 3
            })
        ));
        assert!(matches!(sub.next().await, Some(Event::Data(_))));
        assert!(matches!(sub.next().await, Some(Event::Data(_))));
        assert_eq!(hub.lost_items(), 9);
        drop(sub);
        assert!(!hub.active(), "dropping the subscription unsubscribes");
    }

    #[tokio::test]
    async fn byte_bound_and_points_and_viewer_limit() {
        let hub = Arc::new(Hub::default());
        hub.set_bounds(Bounds {
            requests: 100,
            bytes: 25,
            subscribers: 1,
        });
        let mut sub = hub
            .subscribe(Point::Exporter("otlp".into()), Some(Signal::Traces))
            .unwrap();
        assert_eq!(
            hub.subscribe(Point::Receivers, None).err(),
            Some(SubscribeError::TooMany(1))
        );
        // receivers are not this viewer's point: neither buffered nor lost
        hub.publish(Kind::Receiver, "otlp", &payload(1, 10), 1);
        for _ in 0..3 {
            hub.publish(Kind::Exporter, "otlp", &payload(1, 10), 1);
        }
        // 10 + 10 fit in 25 bytes, the third is lost
        assert!(matches!(
            sub.next().await,
            Some(Event::Gap {
                items: 1,
                requests: 1
            })
        ));
        let Some(Event::Data(t)) = sub.next().await else {
            panic!("data expected")
        };
        assert_eq!((t.kind, &*t.component), (Kind::Exporter, "otlp"));
    }
}
