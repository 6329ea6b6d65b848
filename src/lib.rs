//! Watchtower: a native Rust OTLP gateway. Receives OTLP once (gRPC :4317, HTTP :4318) and
//! writes it through per-destination queues to Tempo, Prometheus/Mimir, Loki and any OTLP
//! endpoint. Layout: `receiver` (edge) -> `pipeline` (payload, wire validation, router) ->
//! `queue` -> `exporter` (workers, retry, protocols) with `translate` holding the pure
//! OTLP -> Prometheus / Loki functions; `config`, `processor`, `telemetry` and `app` wire it.

#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod compression;
pub mod config;
pub(crate) mod connector;
pub mod exporter;
pub mod extension;
pub mod listener;
pub mod pipeline;
pub(crate) mod processor;
pub mod proto;
pub mod protowire;
pub mod queue;
pub mod receiver;
pub mod runs;
pub mod telemetry;
pub mod translate;

/// Installs rustls' ring crypto provider once (reqwest is built without a default provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
