//! Connectors: components that are an exporter in one pipeline and a receiver in others, as
//! in the Collector. Data they pass on stays inside the same request's all-or-nothing
//! acceptance.

pub mod routing;
