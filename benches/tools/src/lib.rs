//! Watchtower's benchmark and test instruments, kept out of the gateway library so that it
//! holds the product alone: `loadgen` (an OTLP load generator), `sink` (a counting OTLP /
//! remote-write / Loki receiver), the realistic content generator they and the micro-benchmarks
//! share, latency statistics, and `floor` (the libraries-only endpoint that measures the sidecar
//! benchmark's floor). The binary `watchtower-bench` exposes `loadgen`, `sink` and `floor` as
//! subcommands (BENCHMARKS.md). Built on the gateway's own pieces (`watchtower` library: the
//! raw gRPC codec, the HTTP server loop, the OTLP/JSON mapping, the protocol types) so that the
//! instruments speak exactly what the gateway speaks.

pub mod content;
pub mod floor;
pub mod loadgen;
pub mod sink;
pub mod stats;
