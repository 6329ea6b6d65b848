//! Self-metrics of the memory limiter and of admission control: the limit each limiter
//! chose (and from where), what it decides on, and each receiver's bytes in flight, waiting
//! and refused. Registered once per gateway, next to the Collector-named metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

/// Label pairs; `Vec<(name, value)>` encodes as a Prometheus label set.
pub type Labels = Vec<(&'static str, String)>;
type G = Family<Labels, Gauge<u64, AtomicU64>>;

/// Gauges and counters of memory accounting.
#[derive(Default)]
pub struct MemoryMetrics {
    /// `watchtower_memory_limiter_limit_bytes{processor,source}`: the hard limit.
    pub limit: G,
    /// `watchtower_memory_limiter_soft_limit_bytes{processor}`: refuse above it.
    pub soft_limit: G,
    /// `watchtower_memory_limiter_usage_bytes{processor,measure}`: the figure decided on.
    pub usage: G,
    /// `watchtower_receiver_admission_in_flight_bytes{receiver}`.
    pub in_flight: G,
    /// `watchtower_receiver_admission_waiting_bytes{receiver}`.
    pub waiting: G,
    /// `watchtower_receiver_admission_refused_requests_total{receiver,transport}`.
    pub refused: Family<Labels, Counter>,
}

impl MemoryMetrics {
    /// Registers every family in `m`'s registry.
    pub fn register(m: &super::metrics::Metrics) -> Self {
        let me = MemoryMetrics::default();
        let mut reg = m.registry.lock();
        reg.register(
            "watchtower_memory_limiter_limit_bytes",
            "Hard memory limit of a memory_limiter and where it came from (config, cgroup_v2, cgroup_v1, host)",
            me.limit.clone(),
        );
        reg.register(
            "watchtower_memory_limiter_soft_limit_bytes",
            "Soft limit (limit minus spike limit): data is refused above it",
            me.soft_limit.clone(),
        );
        reg.register(
            "watchtower_memory_limiter_usage_bytes",
            "The figure the limiter decides on: allocator live bytes (or RSS) plus bytes admitted since the last sample",
            me.usage.clone(),
        );
        reg.register(
            "watchtower_receiver_admission_in_flight_bytes",
            "Request bytes (compressed and decompressed) a receiver holds in flight",
            me.in_flight.clone(),
        );
        reg.register(
            "watchtower_receiver_admission_waiting_bytes",
            "Request bytes waiting for admission",
            me.waiting.clone(),
        );
        reg.register(
            "watchtower_receiver_admission_refused_requests",
            "Requests refused by admission control before their body was read",
            me.refused.clone(),
        );
        me
    }
}
