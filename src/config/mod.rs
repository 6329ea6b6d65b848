//! Configuration: the OpenTelemetry Collector's YAML shape with Watchtower's component types.
pub mod common;
