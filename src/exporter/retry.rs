//! Exponential backoff with jitter, as the Collector's `retry_on_failure` computes it:
//! interval(n) = min(initial * multiplier^n, max_interval), randomized by
//! +/- randomization_factor; a server's Retry-After / RetryInfo wins when it is longer.

use crate::config::common::RetrySettings;
use rand::Rng;
use std::time::Duration;

/// The longest wait a server's hint (`Retry-After`, gRPC `RetryInfo`) is read as, whatever it
/// says: one hour. The retry layer honours a hint only up to `max_interval` anyway; this bound
/// keeps the parsed value sane wherever else it is shown.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// The wait before attempt `attempt + 1` (attempt counts from 0).
pub fn backoff(settings: &RetrySettings, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let initial = settings.initial_interval.0.as_secs_f64();
    let max = settings.max_interval.0.as_secs_f64().max(initial);
    let base = (initial * settings.multiplier.max(1.0).powi(attempt.min(64) as i32)).min(max);
    let r = settings.randomization_factor.clamp(0.0, 1.0);
    let jittered = if r > 0.0 {
        base * rand::thread_rng().gen_range((1.0 - r)..=(1.0 + r))
    } else {
        base
    };
    let wait = Duration::from_secs_f64(jittered.max(0.0));
    match retry_after {
        Some(ra) if ra > wait => ra,
        _ => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::common::Dur;

    #[test]
    fn grows_and_caps_with_jitter_bounds() {
        let s = RetrySettings {
            initial_interval: Dur::millis(100),
            max_interval: Dur::secs(1),
            multiplier: 2.0,
            randomization_factor: 0.5,
            ..Default::default()
        };
        for _ in 0..50 {
            let w0 = backoff(&s, 0, None).as_secs_f64();
            assert!((0.05..=0.15).contains(&w0), "{w0}");
            let w3 = backoff(&s, 3, None).as_secs_f64();
            assert!((0.4..=1.2).contains(&w3), "{w3}");
            let w10 = backoff(&s, 10, None).as_secs_f64();
            assert!((0.5..=1.5).contains(&w10), "{w10}");
        }
        assert_eq!(
            backoff(&s, 0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
