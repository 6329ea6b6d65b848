//! Self-observability: Collector-named metrics, process facts, and the health/admin endpoint.
pub mod admin;
pub mod allocator;
pub mod labels;
pub mod memory_metrics;
pub mod metrics;
pub mod process;
pub mod queue_metrics;
pub mod readiness;
pub mod redact;
