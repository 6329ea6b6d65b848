//! Request latency percentiles. Samples are kept exactly (microseconds, 4 bytes each: a
//! minute at 50k requests/s is 12 MB), merged across workers and sorted once at the end.

use serde::Serialize;
use std::time::Duration;

#[derive(Default, Clone, Debug)]
pub struct Latencies {
    micros: Vec<u32>,
}

/// Percentiles in milliseconds.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.micros.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Nearest-rank percentiles.
    pub fn summary(mut self) -> Summary {
        if self.micros.is_empty() {
            return Summary::default();
        }
        self.micros.sort_unstable();
        let n = self.micros.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            self.micros[rank - 1] as f64 / 1000.0
        };
        let sum: u64 = self.micros.iter().map(|&v| v as u64).sum();
        Summary {
            count: n as u64,
            mean: sum as f64 / n as f64 / 1000.0,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: self.micros[n - 1] as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, 50.0);
        assert_eq!(s.p90, 90.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(Latencies::default().summary().count, 0);
    }
}
