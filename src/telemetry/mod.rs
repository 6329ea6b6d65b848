//! Self-observability: Collector-named metrics, process facts, and the health/admin endpoint.
pub mod admin;
pub mod metrics;
pub mod process;
