//! What the data path hands to viewers: the tap points, the recent-data ring and each
//! destination's state. One instance lives in [`crate::telemetry::metrics::Metrics`], which
//! receivers, the router and exporter workers already share, so no new plumbing is needed.

use super::filter::Kind;
use super::recent::Recent;
use super::tap::Hub;
use crate::pipeline::payload::Payload;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Now as Unix time in nanoseconds.
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A destination's health as the status page shows it.
#[derive(Default)]
pub struct DestinationState {
    /// Unix ns of the first failed attempt of the current retry streak (0 = not retrying).
    retrying_since: AtomicU64,
    /// Unix ns of the last batch dropped (permanent error, retries exhausted, queue full).
    last_drop: AtomicU64,
    /// Unix ns of the last accepted batch.
    last_success: AtomicU64,
    /// (Unix ns, message with URLs masked) of the last failure.
    last_error: Mutex<Option<(u64, String)>>,
}

/// Snapshot of a [`DestinationState`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationView {
    /// `healthy`, `retrying` or `dropping` (a batch dropped in the last minute and none sent
    /// since).
    pub state: &'static str,
    pub retrying_since_unix_nano: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_unix_nano: Option<u64>,
    pub last_drop_unix_nano: Option<u64>,
    pub last_success_unix_nano: Option<u64>,
}

impl DestinationState {
    /// A batch was accepted by the destination.
    pub fn on_success(&self) {
        if self.retrying_since.load(Ordering::Relaxed) != 0 {
            self.retrying_since.store(0, Ordering::Relaxed);
        }
        self.last_success.store(now_unix_nano(), Ordering::Relaxed);
    }

    /// An attempt failed and will be retried.
    pub fn on_retry(&self, message: &str) {
        let now = now_unix_nano();
        let _ = self
            .retrying_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        *self.last_error.lock() = Some((now, crate::telemetry::redact::text(message)));
    }

    /// A batch was dropped.
    pub fn on_drop(&self, message: &str) {
        let now = now_unix_nano();
        self.retrying_since.store(0, Ordering::Relaxed);
        self.last_drop.store(now, Ordering::Relaxed);
        *self.last_error.lock() = Some((now, crate::telemetry::redact::text(message)));
    }

    pub fn view(&self, now: u64) -> DestinationView {
        let opt = |v: u64| (v != 0).then_some(v);
        let since = opt(self.retrying_since.load(Ordering::Relaxed));
        let drop = opt(self.last_drop.load(Ordering::Relaxed));
        let ok = opt(self.last_success.load(Ordering::Relaxed));
        let err = self.last_error.lock().clone();
        let dropping = drop
            .is_some_and(|d| now.saturating_sub(d) < 60_000_000_000 && ok.is_none_or(|o| o < d));
        DestinationView {
            state: if since.is_some() {
                "retrying"
            } else if dropping {
                "dropping"
            } else {
                "healthy"
            },
            retrying_since_unix_nano: since,
            last_error: err.as_ref().map(|e| e.1.clone()),
            last_error_unix_nano: err.map(|e| e.0),
            last_drop_unix_nano: drop,
            last_success_unix_nano: ok,
        }
    }
}

/// Tap points, recent data and destination states of one process.
pub struct Observe {
    pub tap: Arc<Hub>,
    recent: OnceLock<Recent>,
    destinations: Mutex<BTreeMap<String, Arc<DestinationState>>>,
    pub started: Instant,
    pub started_unix_nano: u64,
}

impl Default for Observe {
    fn default() -> Self {
        Observe {
            tap: Arc::default(),
            recent: OnceLock::new(),
            destinations: Mutex::default(),
            started: Instant::now(),
            started_unix_nano: now_unix_nano(),
        }
    }
}

impl Observe {
    /// Turns the recent-data ring on (once; later calls keep the first budget).
    pub fn enable_recent(&self, max_bytes: u64) {
        let _ = self.recent.set(Recent::new(max_bytes));
    }

    pub fn recent(&self) -> Option<&Recent> {
        self.recent.get()
    }

    /// True when an accepted request should be handed to [`Observe::received`].
    #[inline]
    pub fn wants_received(&self) -> bool {
        self.tap.active() || self.recent.get().is_some()
    }

    /// A receiver's request was accepted (after validation and test-run stamping).
    pub fn received(&self, receiver: &str, p: &Payload) {
        let now = now_unix_nano();
        self.tap.publish(Kind::Receiver, receiver, p, now);
        if let Some(r) = self.recent.get() {
            r.push(receiver, p, now);
        }
    }

    /// An exporter is sending a batch (first attempt). One atomic load without viewers.
    #[inline]
    pub fn sending(&self, exporter: &str, p: &Payload) {
        if self.tap.active() {
            self.tap
                .publish(Kind::Exporter, exporter, p, now_unix_nano());
        }
    }

    /// The state of a destination, created on first use.
    pub fn destination(&self, exporter: &str) -> Arc<DestinationState> {
        self.destinations
            .lock()
            .entry(exporter.to_string())
            .or_default()
            .clone()
    }

    /// Every destination's state.
    pub fn destinations(&self) -> BTreeMap<String, DestinationView> {
        let now = now_unix_nano();
        self.destinations
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.view(now)))
            .collect()
    }
}
