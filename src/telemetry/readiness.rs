//! Why the gateway is refusing data right now, for the health endpoint's readiness answer:
//! a load balancer should shift traffic away while the memory limiter or admission control
//! refuses, instead of sending requests that get 429 / RESOURCE_EXHAUSTED.
//!
//! Two kinds of source: a state (the memory limiter is above its soft limit until a sample
//! says otherwise) and an event (admission control refused a request; the reason is kept for
//! a hold time, because a budget frees and fills again within milliseconds).

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a source stays reported.
#[derive(Clone, Debug)]
enum Until {
    /// Until `clear` is called.
    Cleared,
    /// Until this instant.
    At(Instant),
}

/// The refusing sources of one gateway, keyed by a stable name
/// (`memory_limiter`, `admission/<receiver>`), each with its reason.
#[derive(Default)]
pub struct Pressure {
    sources: Mutex<BTreeMap<String, (String, Until)>>,
}

impl Pressure {
    /// `source` refuses until [`Pressure::clear`] is called for it.
    pub fn set(&self, source: &str, reason: String) {
        self.sources
            .lock()
            .insert(source.to_string(), (reason, Until::Cleared));
    }

    /// `source` no longer refuses.
    pub fn clear(&self, source: &str) {
        self.sources.lock().remove(source);
    }

    /// `source` refused just now; it is reported for `hold`.
    pub fn refused(&self, source: &str, reason: String, hold: Duration) {
        self.sources.lock().insert(
            source.to_string(),
            (reason, Until::At(Instant::now() + hold)),
        );
    }

    /// The reasons in force now (empty: ready), in source order.
    pub fn reasons(&self) -> Vec<String> {
        let now = Instant::now();
        let mut map = self.sources.lock();
        map.retain(|_, (_, until)| match until {
            Until::Cleared => true,
            Until::At(t) => *t > now,
        });
        map.iter().map(|(k, (r, _))| format!("{k}: {r}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_sources_stay_until_cleared() {
        let p = Pressure::default();
        assert!(p.reasons().is_empty());
        p.set("memory_limiter", "above soft limit".into());
        assert_eq!(p.reasons(), vec!["memory_limiter: above soft limit"]);
        p.clear("memory_limiter");
        assert!(p.reasons().is_empty());
    }

    #[test]
    fn event_sources_expire_after_their_hold() {
        let p = Pressure::default();
        p.refused(
            "admission/otlp",
            "budget full".into(),
            Duration::from_millis(30),
        );
        assert_eq!(p.reasons().len(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(p.reasons().is_empty());
    }
}
