//! `memory_limiter`: refuses new data with a retryable status while the memory the gateway
//! holds is above `limit - spike_limit`, so it stops growing before the limit instead of
//! being OOM-killed. The figure decided on is the allocator's live bytes (jemalloc
//! `stats.allocated`, or RSS where jemalloc is not the allocator), sampled every
//! `check_interval`; between samples the bytes admitted are added to the last sample, so a
//! burst is caught before the next tick. Because freed memory leaves the live figure at once
//! (and jemalloc returns it to the OS), the limiter cannot latch: the first sample after a
//! spike is released accepts again. Receivers ask [`MemoryLimiter::has_room`] before reading
//! a body. The limit is `limit_mib`, or `limit_percentage` of the container's cgroup limit
//! (see `cgroup`), logged and exported as `watchtower_memory_limiter_limit_bytes`.

use crate::config::common::Dur;
use crate::processor::cgroup;
use crate::telemetry::memory_metrics::MemoryMetrics;
use crate::telemetry::readiness::Pressure;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
        if self.limit_percentage > 100 {
            return Err("limit_percentage must be at most 100".into());
        }
        if self.spike_limit_percentage >= 100
            || (self.limit_percentage > 0 && self.spike_limit_percentage >= self.limit_percentage)
        {
            return Err("spike_limit_percentage must be smaller than limit_percentage".into());
        }
        Ok(())
    }

    /// The hard and soft limits in bytes and where the hard one came from: `limit_mib`
    /// as configured, or `limit_percentage` of the cgroup limit (or of the host when no
    /// cgroup limit is set). The spike limit defaults to a fifth of the limit, as in the
    /// Collector. Errors when a percentage is set and no total can be read.
    pub fn limits(&self, paths: &cgroup::Paths) -> Result<Limits, cgroup::TotalMemoryError> {
        let (limit, spike, source) = if self.limit_mib > 0 {
            (
                self.limit_mib << 20,
                self.spike_limit_mib << 20,
                "config".to_string(),
            )
        } else {
            let total = cgroup::total_memory(paths)?;
            let pct = |p: u64| (u128::from(total.bytes) * u128::from(p) / 100) as u64;
            (
                pct(self.limit_percentage),
                pct(self.spike_limit_percentage),
                match &total.source {
                    cgroup::LimitSource::CgroupV2(f)
                    | cgroup::LimitSource::CgroupV1(f)
                    | cgroup::LimitSource::Host(f) => {
                        format!("{} ({})", total.source.kind(), f.display())
                    }
                },
            )
        };
        let spike = if spike == 0 { limit / 5 } else { spike };
        Ok(Limits {
            limit,
            soft: limit.saturating_sub(spike),
            source,
        })
    }
}

/// What a limiter enforces.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Hard limit, bytes.
    pub limit: u64,
    /// Refuse above this many bytes (limit minus spike limit).
    pub soft: u64,
    /// `config`, or `cgroup_v2 (<file>)`, `cgroup_v1 (<file>)`, `host (<file>)`.
    pub source: String,
}

impl Limits {
    /// The metric label for the source: its first word.
    pub fn source_kind(&self) -> &str {
        self.source.split(' ').next().unwrap_or("")
    }
}

/// What the limiter decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// jemalloc's `stats.allocated` (bytes in live allocations) plus the resident memory
    /// outside jemalloc (see `telemetry::allocator::held_bytes`).
    AllocatorLive,
    /// Resident set size (when the allocator's figure is not available).
    Rss,
}

impl Measure {
    fn sample(self) -> Option<u64> {
        match self {
            Measure::AllocatorLive => crate::telemetry::allocator::held_bytes(),
            Measure::Rss => crate::telemetry::process::rss_bytes(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Measure::AllocatorLive => "allocator_live",
            Measure::Rss => "rss",
        }
    }
}

/// Shared admission gate of one `memory_limiter` processor.
pub struct MemoryLimiter {
    id: String,
    soft_limit: u64,
    /// last sample plus bytes admitted since (the sample resets it every `check_interval`)
    estimate: AtomicU64,
    refusing: AtomicBool,
    /// a request was refused since the last sample (readiness stays 503 for that interval
    /// even when the sample itself is just under the limit)
    refused_since_sample: AtomicBool,
    pressure: Option<Arc<Pressure>>,
    /// what to sample between ticks (`None`: a fixed test limiter)
    measure: Option<Measure>,
    /// when the estimate was last sampled ([`elapsed_ms`])
    sampled_at: AtomicU64,
}

/// A refusal samples memory afresh when the last sample is at least this old (ms).
pub const RESAMPLE_AFTER_MS: u64 = 100;

/// Milliseconds since the first call (tokio's monotonic clock, for the sample times).
fn elapsed_ms() -> u64 {
    static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl MemoryLimiter {
    /// Resolves the limits, logs the choice, exports it, and starts sampling every
    /// `check_interval`. Each sample replaces the estimate, so once live memory is back
    /// under the soft limit requests are accepted again at the next tick at the latest.
    pub fn start(
        id: &str,
        cfg: &Config,
        metrics: &MemoryMetrics,
        pressure: Arc<Pressure>,
    ) -> Result<Arc<Self>, String> {
        let limits = cfg
            .limits(&cgroup::Paths::default())
            .map_err(|e| format!("processors.{id}: {e}"))?;
        if limits.soft == 0 {
            return Err(format!(
                "processors.{id}: the soft limit resolves to 0 bytes (limit {} bytes from {}): every request would be refused; give the container more memory or set limit_mib",
                limits.limit, limits.source
            ));
        }
        let measure = if crate::telemetry::allocator::live_bytes().is_some() {
            Measure::AllocatorLive
        } else {
            Measure::Rss
        };
        if let Some(now) = measure.sample().filter(|&n| n > limits.soft) {
            tracing::warn!(
                processor = id,
                usage_bytes = now,
                soft_limit_bytes = limits.soft,
                source = %limits.source,
                "memory_limiter: the gateway already uses more than the soft limit: data is refused until it fits; give the container more memory or raise the limit"
            );
        }
        tracing::info!(
            processor = id,
            limit_bytes = limits.limit,
            soft_limit_bytes = limits.soft,
            source = %limits.source,
            measure = measure.name(),
            "memory_limiter limits"
        );
        metrics
            .limit
            .get_or_create(&vec![
                ("processor", id.to_string()),
                ("source", limits.source_kind().to_string()),
            ])
            .set(limits.limit);
        metrics
            .soft_limit
            .get_or_create(&vec![("processor", id.to_string())])
            .set(limits.soft);
        let usage = metrics
            .usage
            .get_or_create(&vec![
                ("processor", id.to_string()),
                ("measure", measure.name().to_string()),
            ])
            .clone();
        let lim = Arc::new(MemoryLimiter {
            id: id.to_string(),
            soft_limit: limits.soft,
            estimate: AtomicU64::new(measure.sample().unwrap_or(0)),
            refusing: AtomicBool::new(false),
            refused_since_sample: AtomicBool::new(false),
            pressure: Some(pressure),
            measure: Some(measure),
            sampled_at: AtomicU64::new(elapsed_ms()),
        });
        let weak = Arc::downgrade(&lim);
        let every: Duration = cfg.check_interval.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { return };
                let Some(now) = measure.sample() else {
                    continue;
                };
                l.estimate.store(now, Ordering::Relaxed);
                l.sampled_at.store(elapsed_ms(), Ordering::Relaxed);
                usage.set(now);
                if measure == Measure::AllocatorLive
                    && now <= l.soft_limit
                    && crate::telemetry::process::rss_bytes().is_some_and(|r| r > l.soft_limit)
                {
                    // freed memory still resident: hand it back now rather than at decay
                    crate::telemetry::allocator::purge();
                }
                let refused = l.refused_since_sample.swap(false, Ordering::Relaxed);
                l.note_state(now > l.soft_limit || refused, now);
            }
        });
        Ok(lim)
    }

    /// For tests: a limiter with a fixed soft limit and a fixed current estimate.
    pub fn fixed(soft_limit: u64, current: u64) -> Arc<Self> {
        Arc::new(MemoryLimiter {
            id: "memory_limiter".into(),
            soft_limit,
            estimate: AtomicU64::new(current),
            refusing: AtomicBool::new(false),
            refused_since_sample: AtomicBool::new(false),
            pressure: None,
            measure: None,
            sampled_at: AtomicU64::new(0),
        })
    }

    /// The soft limit, bytes.
    pub fn soft_limit(&self) -> u64 {
        self.soft_limit
    }

    /// The estimate, sampled afresh when it would refuse and the last sample is older than
    /// [`RESAMPLE_AFTER_MS`]: the estimate adds what was admitted since the last sample, not
    /// what was freed, so with a long `check_interval` it would refuse long after memory was
    /// given back (the Collector decides on its last measurement alone).
    fn current(&self, bytes: u64) -> u64 {
        let est = self.estimate.load(Ordering::Relaxed);
        if est.saturating_add(bytes) <= self.soft_limit {
            return est;
        }
        let now = elapsed_ms();
        let last = self.sampled_at.load(Ordering::Relaxed);
        match self.measure {
            Some(m)
                if now.saturating_sub(last) >= RESAMPLE_AFTER_MS
                    && self
                        .sampled_at
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok() =>
            {
                match m.sample() {
                    Some(fresh) => {
                        self.estimate.store(fresh, Ordering::Relaxed);
                        fresh
                    }
                    None => est,
                }
            }
            _ => est,
        }
    }

    /// Reports a change of state to readiness.
    fn note_state(&self, refusing: bool, usage: u64) {
        if self.refusing.swap(refusing, Ordering::Relaxed) == refusing {
            return;
        }
        let Some(p) = &self.pressure else { return };
        let source = format!("memory_limiter/{}", self.id);
        if refusing {
            p.set(
                &source,
                format!(
                    "refusing data: {} MiB in use, soft limit {} MiB",
                    usage >> 20,
                    self.soft_limit >> 20
                ),
            );
        } else {
            p.clear(&source);
        }
    }

    /// Whether `bytes` more would fit now (admits nothing). Receivers ask this before
    /// reading a body, so a request is refused without being buffered.
    pub fn has_room(&self, bytes: u64) -> bool {
        let est = self.current(bytes);
        let room = est.saturating_add(bytes) <= self.soft_limit;
        if !room {
            self.refused_since_sample.store(true, Ordering::Relaxed);
            self.note_state(true, est);
        }
        room
    }

    /// Whether a request of `bytes` may be admitted now; admitted bytes are added to the
    /// estimate until the next sample.
    pub fn admit(&self, bytes: u64) -> bool {
        let est = self.current(bytes);
        if est.saturating_add(bytes) > self.soft_limit {
            self.refused_since_sample.store(true, Ordering::Relaxed);
            self.note_state(true, est);
            return false;
        }
        self.estimate.fetch_add(bytes, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree(memory_max: &str) -> (tempfile::TempDir, cgroup::Paths) {
        let d = tempfile::tempdir().unwrap();
        let p = cgroup::Paths {
            cgroup_root: d.path().join("cgroup"),
            self_cgroup: d.path().join("self_cgroup"),
            meminfo: d.path().join("meminfo"),
        };
        std::fs::create_dir_all(p.cgroup_root.join("pod/ctr")).unwrap();
        std::fs::write(&p.self_cgroup, "0::/pod/ctr\n").unwrap();
        std::fs::write(p.cgroup_root.join("pod/ctr/memory.max"), memory_max).unwrap();
        std::fs::write(&p.meminfo, "MemTotal: 8000000 kB\n").unwrap();
        (d, p)
    }

    fn pct(limit: u64, spike: u64) -> Config {
        Config {
            limit_percentage: limit,
            spike_limit_percentage: spike,
            ..Config::default()
        }
    }

    #[test]
    fn a_spike_limit_at_or_above_the_limit_is_refused() {
        for (limit, spike) in [(40, 50), (50, 50), (80, 99)] {
            let e = pct(limit, spike).validate().unwrap_err();
            assert!(e.contains("spike_limit_percentage must be smaller"), "{e}");
        }
        pct(80, 20).validate().unwrap();
        pct(80, 0).validate().unwrap();
        let (_d, p) = fake_tree("4194304");
        // 80% of 4 MiB, multiplied before dividing (the Collector's rounding)
        assert_eq!(pct(80, 0).limits(&p).unwrap().limit, 3_355_443);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_samples_afresh_when_the_estimate_is_old() {
        let l = MemoryLimiter::fixed(1 << 30, 0);
        let mut l = Arc::try_unwrap(l).unwrap_or_else(|_| panic!("shared"));
        l.measure = Some(Measure::Rss);
        // an estimate far above the limit (admitted bytes long freed), sampled long ago
        l.estimate.store(u64::MAX / 2, Ordering::Relaxed);
        l.sampled_at.store(elapsed_ms(), Ordering::Relaxed);
        assert!(!l.admit(1), "sampled just now: the estimate stands");
        tokio::time::advance(Duration::from_millis(RESAMPLE_AFTER_MS + 10)).await;
        assert!(
            l.admit(1),
            "a fresh sample (this test's RSS) is far below 1 GiB"
        );
        // a fixed limiter (nothing to sample) keeps refusing
        let f = MemoryLimiter::fixed(100, 200);
        assert!(!f.admit(1));
    }

    #[test]
    fn percentages_apply_to_the_cgroup_limit() {
        let (_d, p) = fake_tree("1048576000\n");
        let l = pct(80, 20).limits(&p).unwrap();
        assert_eq!(l.limit, 1048576000 / 100 * 80);
        assert_eq!(l.soft, 1048576000 / 100 * 60);
        assert_eq!(l.source_kind(), "cgroup_v2");
        assert!(l.source.contains("pod/ctr/memory.max"), "{}", l.source);
    }

    #[test]
    fn percentages_apply_to_the_host_without_a_cgroup_limit() {
        let (_d, p) = fake_tree("max\n");
        let l = pct(50, 0).limits(&p).unwrap();
        assert_eq!(l.limit, 8000000 * 1024 / 100 * 50);
        // spike defaults to a fifth of the limit
        assert_eq!(l.soft, l.limit - l.limit / 5);
        assert_eq!(l.source_kind(), "host");
    }

    #[test]
    fn limit_mib_wins_and_reads_nothing() {
        let (_d, mut p) = fake_tree("garbage\n");
        p.meminfo = p.meminfo.with_file_name("absent");
        let c = Config {
            limit_mib: 100,
            spike_limit_mib: 10,
            ..Config::default()
        };
        let l = c.limits(&p).unwrap();
        assert_eq!((l.limit, l.soft), (100 << 20, 90 << 20));
        assert_eq!(l.source_kind(), "config");
    }

    #[test]
    fn unreadable_totals_are_an_error() {
        let (_d, mut p) = fake_tree("max\n");
        p.meminfo = p.meminfo.with_file_name("absent");
        assert!(pct(80, 20).limits(&p).is_err());
    }

    #[test]
    fn a_sample_below_the_limit_accepts_again() {
        let l = MemoryLimiter::fixed(100, 90);
        assert!(l.admit(10));
        assert!(!l.admit(1), "estimate 100 + 1 is over");
        assert!(!l.has_room(1));
        // what the sampling task does at a tick after the spike was freed
        l.estimate.store(20, Ordering::Relaxed);
        assert!(l.has_room(80) && l.admit(80));
    }
}
