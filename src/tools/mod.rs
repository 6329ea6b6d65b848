//! Benchmark and test tools that ship in the same binary: `watchtower loadgen` (an OTLP load
//! generator) and `watchtower sink` (a counting OTLP / remote-write / Loki receiver), with the
//! realistic content generator and latency statistics they share.

pub mod content;
pub mod loadgen;
pub mod sink;
pub mod stats;
