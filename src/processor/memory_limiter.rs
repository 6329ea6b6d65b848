//! `memory_limiter`: refuses new data with a retryable status while the process's resident
//! memory is above `limit_mib - spike_limit_mib`, so the gateway stops growing before the
//! limit instead of being OOM-killed. RSS is sampled every `check_interval`; between samples
//! the bytes admitted are added to the last sample, so a burst is caught before the next tick.

use crate::config::common::Dur;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub check_interval: Dur,
    pub limit_mib: u64,
    pub spike_limit_mib: u64,
    pub limit_percentage: u64,
    pub spike_limit_percentage: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            check_interval: Dur::secs(1),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.check_interval.0.is_zero() {
            return Err("check_interval must be greater than zero".into());
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return Err("either limit_mib or limit_percentage must be set".into());
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return Err("spike_limit_mib must be smaller than limit_mib".into());
        }
        if self.limit_percentage > 100
            || self.spike_limit_percentage >= 100.max(self.limit_percentage.max(1))
        {
            return Err(
                "limit_percentage must be at most 100 and spike_limit_percentage below it".into(),
            );
        }
        Ok(())
    }

    /// The soft limit in bytes: refuse above it.
    pub fn soft_limit_bytes(&self) -> u64 {
        let (limit, spike) = if self.limit_mib > 0 {
            (self.limit_mib << 20, self.spike_limit_mib << 20)
        } else {
            let total = total_memory_bytes().unwrap_or(1 << 30);
            (
                total / 100 * self.limit_percentage,
                total / 100 * self.spike_limit_percentage,
            )
        };
        let spike = if spike == 0 { limit / 5 } else { spike };
        limit.saturating_sub(spike)
    }
}

fn total_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Shared admission gate.
pub struct MemoryLimiter {
    soft_limit: u64,
    /// last RSS sample plus bytes admitted since
    estimate: AtomicU64,
}

impl MemoryLimiter {
    pub fn start(cfg: &Config) -> Arc<Self> {
        let lim = Arc::new(MemoryLimiter {
            soft_limit: cfg.soft_limit_bytes(),
            estimate: AtomicU64::new(crate::telemetry::process::rss_bytes().unwrap_or(0)),
        });
        let weak = Arc::downgrade(&lim);
        let every: Duration = cfg.check_interval.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { return };
                if let Some(rss) = crate::telemetry::process::rss_bytes() {
                    l.estimate.store(rss, Ordering::Relaxed);
                }
            }
        });
        lim
    }

    /// For tests: a limiter with a fixed soft limit and a fixed current estimate.
    pub fn fixed(soft_limit: u64, current: u64) -> Arc<Self> {
        Arc::new(MemoryLimiter {
            soft_limit,
            estimate: AtomicU64::new(current),
        })
    }

    /// Whether a request of `bytes` may be admitted now.
    pub fn admit(&self, bytes: u64) -> bool {
        let est = self.estimate.load(Ordering::Relaxed);
        if est + bytes > self.soft_limit {
            return false;
        }
        self.estimate.fetch_add(bytes, Ordering::Relaxed);
        true
    }
}
