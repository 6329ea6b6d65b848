//! Retry budget (docs/durable.md "Retry budget", ARCHITECTURE.md rule 5): retries to one destination are limited to a fraction of
//! its recent successful sends plus a small floor, so that many workers retrying a backend
//! that just came back do not multiply its load (collector#12699). A token bucket: every
//! success adds `ratio` tokens, time adds `min_per_second`, a retry costs one; the bucket
//! holds at most `max(10, 10 * min_per_second)` tokens. A retry without a token is not sent:
//! the worker waits another (jittered) backoff interval and asks again.

use crate::config::common::RetryBudgetSettings;
use parking_lot::Mutex;
use std::time::Instant;

pub struct RetryBudget {
    ratio: f64,
    per_second: f64,
    cap: f64,
    state: Mutex<(f64, Instant)>,
}

impl RetryBudget {
    /// `None` when the budget is disabled.
    pub fn new(s: &RetryBudgetSettings) -> Option<Self> {
        if !s.enabled {
            return None;
        }
        let cap = (10.0 * s.min_per_second).max(10.0);
        Some(RetryBudget {
            ratio: s.ratio.max(0.0),
            per_second: s.min_per_second.max(0.0),
            cap,
            state: Mutex::new((cap, Instant::now())),
        })
    }

    fn refill(&self, st: &mut (f64, Instant)) {
        let now = Instant::now();
        st.0 = (st.0 + now.duration_since(st.1).as_secs_f64() * self.per_second).min(self.cap);
        st.1 = now;
    }

    /// A send succeeded.
    pub fn on_success(&self) {
        let mut st = self.state.lock();
        self.refill(&mut st);
        st.0 = (st.0 + self.ratio).min(self.cap);
    }

    /// Takes a token for one retry; `false` = over budget, do not send now.
    pub fn try_retry(&self) -> bool {
        let mut st = self.state.lock();
        self.refill(&mut st);
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_retries_to_ratio_of_successes_plus_floor() {
        let b = RetryBudget::new(&RetryBudgetSettings {
            enabled: true,
            ratio: 0.5,
            min_per_second: 0.0,
        })
        .unwrap();
        // the initial burst
        let burst = (0..100).take_while(|_| b.try_retry()).count();
        assert_eq!(burst, 10);
        assert!(!b.try_retry());
        for _ in 0..4 {
            b.on_success();
        }
        // 4 successes * 0.5 = 2 retries
        assert!(b.try_retry());
        assert!(b.try_retry());
        assert!(!b.try_retry());
    }

    #[test]
    fn floor_refills_with_time() {
        let b = RetryBudget::new(&RetryBudgetSettings {
            enabled: true,
            ratio: 0.0,
            min_per_second: 100.0,
        })
        .unwrap();
        while b.try_retry() {}
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(b.try_retry(), "about 5 tokens came back");
        assert!(
            RetryBudget::new(&RetryBudgetSettings {
                enabled: false,
                ..Default::default()
            })
            .is_none()
        );
    }
}
