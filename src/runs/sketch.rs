//! A mergeable quantile sketch for span latencies (DDSketch-style): values fall into
//! logarithmic buckets with a fixed relative accuracy, so a run's p50/p95/p99 are known within
//! 1% from a few hundred counters instead of a list of every value, two sketches merge by
//! adding buckets (per-run, per-restart, or across runs), and the state serializes to JSON
//! for persistence and for analysis tools.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Relative accuracy of every quantile (1%).
const ALPHA: f64 = 0.01;
/// Values below this (in ms) count as zero.
const MIN_VALUE: f64 = 1e-6;
/// Bucket cap: beyond it the two lowest buckets are collapsed (keeps memory bounded even for
/// absurd value ranges; never reached for latencies between 1 ns and days).
const MAX_BUCKETS: usize = 4096;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// Latency sketch in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Sketch {
    pub count: u64,
    pub zero_count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// bucket index -> count; bucket i holds values in (gamma^(i-1), gamma^i].
    pub buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
        if v < MIN_VALUE {
            self.zero_count += 1;
            return;
        }
        let idx = (v.ln() / gamma().ln()).ceil() as i32;
        *self.buckets.entry(idx).or_insert(0) += 1;
        self.bound();
    }

    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        // saturating: a part another replica sent may carry any count
        self.count = self.count.saturating_add(other.count);
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.sum += other.sum;
        for (i, n) in &other.buckets {
            let c = self.buckets.entry(*i).or_insert(0);
            *c = c.saturating_add(*n);
        }
        self.bound();
    }

    fn bound(&mut self) {
        while self.buckets.len() > MAX_BUCKETS {
            let mut it = self.buckets.iter();
            let (Some((&a, &na)), Some((&b, _))) = (it.next(), it.next()) else {
                return;
            };
            self.buckets.remove(&a);
            let c = self.buckets.entry(b).or_insert(0);
            *c = c.saturating_add(na);
        }
    }

    /// The q-quantile (0..=1), or None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = (q * (self.count - 1) as f64).round() as u64;
        if rank < self.zero_count {
            return Some(0.0_f64.max(self.min));
        }
        let g = gamma();
        let mut seen = self.zero_count;
        for (i, n) in &self.buckets {
            seen += n;
            if seen > rank {
                let v = 2.0 * g.powi(*i) / (g + 1.0);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_relative_accuracy() {
        let mut s = Sketch::default();
        for i in 1..=10_000 {
            s.add(i as f64 / 10.0);
        }
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = s.quantile(q).unwrap_or(0.0);
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(s.quantile(1.0), Some(1000.0));
    }

    #[test]
    fn merge_equals_single_sketch() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for i in 0..1000 {
            let v = (i * 7 % 113) as f64 + 0.5;
            if i % 2 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a.buckets, all.buckets);
        assert_eq!(a.count, all.count);
        assert_eq!(a.quantile(0.95), all.quantile(0.95));
        let json = serde_json::to_string(&a).unwrap_or_default();
        let back: Sketch = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back.quantile(0.5), a.quantile(0.5));
    }
}
