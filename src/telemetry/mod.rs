//! Self-observability: Collector-named metrics and process facts (the health / metrics
//! endpoint is the `health_check` extension, [`crate::extension::health_check`]).
/// The health / self-metrics endpoint moved to [`crate::extension::health_check`]; this path
/// stays for code written against it.
pub use crate::extension::health_check as admin;
pub mod allocator;
pub(crate) mod labels;
pub(crate) mod memory_metrics;
pub(crate) mod metrics;
pub(crate) mod process;
pub(crate) mod queue_metrics;
pub(crate) mod readiness;
pub mod redact;
pub mod startup_pages;
