//! Self-observability: Collector-named metrics, process facts, and the health/admin endpoint.
pub mod admin;
pub mod labels;
pub mod metrics;
pub mod process;
pub mod queue_metrics;
pub mod redact;
