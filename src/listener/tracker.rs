//! The connection cap of one listener (`max_connections`). At the cap, a new connection
//! closes the connection that has been idle the longest (its graceful close is immediate:
//! it has no open request); when no connection is idle the new one is refused (closed at
//! once), so a flood of connections costs file descriptors only up to the cap.

use super::conn::{CloseReason, ConnState};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Open connections of one listener.
pub struct Tracker {
    max: usize,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    conns: BTreeMap<u64, Arc<ConnState>>,
    /// Connections already asked to close (they still hold a descriptor for a moment).
    evicted: usize,
    /// When a scan last found no idle connection.
    no_idle_at: Option<Instant>,
}

/// How long a scan that found no idle connection is trusted.
pub const RESCAN_AFTER: Duration = Duration::from_millis(20);

/// Keeps a connection counted until dropped.
pub struct ConnGuard {
    tracker: Arc<Tracker>,
    pub state: Arc<ConnState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut inner = self.tracker.inner.lock();
        inner.conns.remove(&self.state.id);
        if self.state.close_requested() == Some(CloseReason::Evicted) {
            inner.evicted = inner.evicted.saturating_sub(1);
        }
    }
}

/// What [`Tracker::admit`] decided.
pub enum Admission {
    /// Admitted without closing anything.
    Admitted(ConnGuard),
    /// Admitted after asking the longest-idle connection to close.
    AdmittedEvicting(ConnGuard),
    /// At the cap with no idle connection: refuse.
    Refused,
}

impl Tracker {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Tracker {
            max: max.max(1),
            next_id: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Open connections (including those closing).
    pub fn open(&self) -> usize {
        self.inner.lock().conns.len()
    }

    /// Asks the longest-idle connection to close; false when none is idle. Under a flood at
    /// the cap a fruitless scan is not repeated for [`RESCAN_AFTER`], so refusing costs O(1).
    fn evict_longest_idle(inner: &mut Inner) -> bool {
        let now = Instant::now();
        if inner.no_idle_at.is_some_and(|t| now < t + RESCAN_AFTER) {
            return false;
        }
        let victim = inner
            .conns
            .values()
            .filter(|c| c.close_requested().is_none())
            .filter_map(|c| c.idle_since().map(|t| (t, c.clone())))
            .min_by_key(|(t, c)| (*t, c.id));
        match victim {
            Some((_, c)) => {
                c.request_close(CloseReason::Evicted);
                inner.evicted += 1;
                inner.no_idle_at = None;
                true
            }
            None => {
                inner.no_idle_at = Some(now);
                false
            }
        }
    }

    /// Frees a descriptor when `accept` failed for lack of them: closes the longest-idle
    /// connection. False when none is idle.
    pub fn shed_idle(&self) -> bool {
        Self::evict_longest_idle(&mut self.inner.lock())
    }

    /// Admits a new connection under the cap, closing the longest-idle one if needed.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.inner.lock();
        let mut evicting = false;
        if inner.conns.len() - inner.evicted.min(inner.conns.len()) >= self.max {
            if !Self::evict_longest_idle(&mut inner) {
                return Admission::Refused;
            }
            evicting = true;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = ConnState::new(id);
        inner.conns.insert(id, state.clone());
        let guard = ConnGuard {
            tracker: self.clone(),
            state,
        };
        if evicting {
            Admission::AdmittedEvicting(guard)
        } else {
            Admission::Admitted(guard)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn guard(a: Admission) -> ConnGuard {
        match a {
            Admission::Admitted(g) | Admission::AdmittedEvicting(g) => g,
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_idle_connection_is_closed_first() {
        let t = Tracker::new(3);
        let a = guard(t.admit());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = guard(t.admit());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = guard(t.admit());
        // b and c go busy, then b finishes: a has been idle longest
        let _rc = c.state.begin();
        drop(b.state.begin());
        assert!(matches!(t.admit(), Admission::AdmittedEvicting(_)));
        assert_eq!(a.state.close_requested(), Some(CloseReason::Evicted));
        assert_eq!(b.state.close_requested(), None);
        assert_eq!(c.state.close_requested(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_with_every_connection_busy_the_new_one_is_refused() {
        let t = Tracker::new(2);
        let a = guard(t.admit());
        let b = guard(t.admit());
        let _ra = a.state.begin();
        let _rb = b.state.begin();
        assert!(matches!(t.admit(), Admission::Refused));
        assert_eq!(t.open(), 2);
        drop(_rb);
        drop(b);
        assert_eq!(t.open(), 1);
        assert!(matches!(t.admit(), Admission::Admitted(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_does_not_count_against_the_cap_while_it_closes() {
        let t = Tracker::new(1);
        let a = guard(t.admit());
        let b = guard(t.admit()); // evicts a
        assert_eq!(a.state.close_requested(), Some(CloseReason::Evicted));
        let _rb = b.state.begin();
        // b is busy and a is already closing: refuse rather than evict b
        assert!(matches!(t.admit(), Admission::Refused));
        drop(a);
        assert_eq!(t.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_after_a_fruitless_scan_is_found_once_the_rescan_delay_passed() {
        let t = Tracker::new(1);
        let a = guard(t.admit());
        let ra = a.state.begin();
        assert!(matches!(t.admit(), Admission::Refused));
        drop(ra);
        // within the rescan delay the earlier answer stands
        assert!(matches!(t.admit(), Admission::Refused));
        tokio::time::sleep(RESCAN_AFTER).await;
        assert!(matches!(t.admit(), Admission::AdmittedEvicting(_)));
        assert_eq!(a.state.close_requested(), Some(CloseReason::Evicted));
    }
}
