//! Per-connection state shared by the accept loop, the request service and the connection
//! driver: how many requests are open, since when the connection is idle, and whether
//! something (the cap, a body timeout) asked it to close. [`wait_close`] is the timer logic
//! that decides when a connection starts its graceful close: idle too long, too old, asked
//! to, or the listener shutting down.

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Why a connection was closed by the server (the `reason` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// No request for `idle_timeout` / `max_connection_idle`.
    Idle,
    /// Reached `max_connection_age`.
    Age,
    /// Closed so that a new connection fits under `max_connections`.
    Evicted,
    /// A request body missed `read_timeout` or `min_body_rate` on HTTP/1.
    BodyTimeout,
    /// The listener is shutting down.
    Shutdown,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::Age => "max_connection_age",
            CloseReason::Evicted => "evicted",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// One open connection.
pub struct ConnState {
    pub id: u64,
    pub accepted: Instant,
    active: AtomicUsize,
    /// Set by the first request.
    served: AtomicBool,
    idle_since: Mutex<Instant>,
    close: Mutex<Option<CloseReason>>,
    changed: Notify,
}

/// Held while a request is being served; marks the connection busy.
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConnState {
    pub fn new(id: u64) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(ConnState {
            id,
            accepted: now,
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: Mutex::new(now),
            close: Mutex::new(None),
            changed: Notify::new(),
        })
    }

    /// Marks a request open until the guard drops. Requests do not wake the connection's
    /// driver (it re-checks idleness when its timer fires), so they cost two atomic updates.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Since when the connection has had no open request (`None` while one is open).
    pub fn idle_since(&self) -> Option<Instant> {
        let since = *self.idle_since.lock();
        (self.active.load(Ordering::SeqCst) == 0).then_some(since)
    }

    /// Asks the connection to close gracefully (the first reason wins).
    pub fn request_close(&self, reason: CloseReason) {
        let mut c = self.close.lock();
        if c.is_none() {
            *c = Some(reason);
        }
        drop(c);
        self.changed.notify_one();
    }

    /// The reason a close was asked for, if any.
    pub fn close_requested(&self) -> Option<CloseReason> {
        *self.close.lock()
    }
}

/// `age` with a uniform jitter of +-10% (as grpc-go), so connections opened together do not
/// all reconnect together.
pub fn jittered(age: Duration) -> Duration {
    use rand::Rng;
    let f = rand::thread_rng().gen_range(0.9..=1.1);
    age.mul_f64(f)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the connection should start its graceful close, and says why.
/// `idle` is the idle timeout, `first` a shorter limit for a connection that has not yet
/// sent a request (the header timeout), `age_deadline` the instant the connection gets too
/// old.
pub async fn wait_close(
    state: &ConnState,
    idle: Option<Duration>,
    first: Option<Duration>,
    age_deadline: Option<Instant>,
    shutdown: &mut watch::Receiver<bool>,
) -> CloseReason {
    loop {
        let idle = match (state.served.load(Ordering::Relaxed), idle, first) {
            (false, Some(i), Some(f)) => Some(i.min(f)),
            (false, None, Some(f)) => Some(f),
            _ => idle,
        };
        let notified = state.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(r) = state.close_requested() {
            return r;
        }
        if *shutdown.borrow() {
            return CloseReason::Shutdown;
        }
        // while busy, look again one idle period later
        let idle_deadline = idle.map(|t| state.idle_since().unwrap_or_else(Instant::now) + t);
        tokio::select! {
            _ = notified => {}
            _ = sleep_until_opt(idle_deadline) => {
                if let (Some(t), Some(since)) = (idle, state.idle_since())
                    && Instant::now() >= since + t
                {
                    return CloseReason::Idle;
                }
            }
            _ = sleep_until_opt(age_deadline) => return CloseReason::Age,
            r = shutdown.changed() => {
                if r.is_err() {
                    return CloseReason::Shutdown;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_shutdown() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_closes_after_the_idle_timeout_counted_from_the_last_request() {
        let st = ConnState::new(1);
        let (_tx, mut rx) = no_shutdown();
        let start = Instant::now();
        let g = st.begin();
        let st2 = st.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(g);
            let _ = st2;
        });
        let r = wait_close(&st, Some(Duration::from_secs(10)), None, None, &mut rx).await;
        assert_eq!(r, CloseReason::Idle);
        // busy for 30 s, then idle for 10 s
        assert_eq!(start.elapsed(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_never_idle() {
        let st = ConnState::new(1);
        let (_tx, mut rx) = no_shutdown();
        let _g = st.begin();
        let r = tokio::time::timeout(
            Duration::from_secs(3600),
            wait_close(&st, Some(Duration::from_secs(1)), None, None, &mut rx),
        )
        .await;
        assert!(r.is_err(), "closed while a request was open: {r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn age_closes_even_a_busy_connection() {
        let st = ConnState::new(1);
        let (_tx, mut rx) = no_shutdown();
        let _g = st.begin();
        let start = Instant::now();
        let r = wait_close(
            &st,
            None,
            None,
            Some(start + Duration::from_secs(5)),
            &mut rx,
        )
        .await;
        assert_eq!(r, CloseReason::Age);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn requested_close_and_shutdown_wake_the_waiter() {
        let st = ConnState::new(1);
        let (tx, mut rx) = no_shutdown();
        let st2 = st.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            st2.request_close(CloseReason::Evicted);
        });
        assert_eq!(
            wait_close(&st, None, None, None, &mut rx).await,
            CloseReason::Evicted
        );
        let st = ConnState::new(2);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.send(true);
        });
        assert_eq!(
            wait_close(&st, None, None, None, &mut rx).await,
            CloseReason::Shutdown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_first_request_gets_the_shorter_header_timeout() {
        let (_tx, mut rx) = no_shutdown();
        let silent = ConnState::new(1);
        let start = Instant::now();
        let r = wait_close(
            &silent,
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(5)),
            None,
            &mut rx,
        )
        .await;
        assert_eq!(
            (r, start.elapsed()),
            (CloseReason::Idle, Duration::from_secs(5))
        );
        // after a request, idleness is measured with the idle timeout
        let served = ConnState::new(2);
        drop(served.begin());
        let start = Instant::now();
        wait_close(
            &served,
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(5)),
            None,
            &mut rx,
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100));
            assert!(
                j >= Duration::from_secs(90) && j <= Duration::from_secs(110),
                "{j:?}"
            );
        }
    }
}
