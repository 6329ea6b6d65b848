//! Watchtower: a native Rust OTLP gateway. Receives OTLP once (gRPC :4317, HTTP :4318) and
//! writes it through per-destination queues to Tempo, Prometheus/Mimir, Loki and any OTLP
//! endpoint. See DESIGN.md in the repository for the data path rules.

pub mod config;
pub mod exporter;
pub mod pipeline;
pub mod proto;
pub mod translate;

/// Installs rustls' ring crypto provider once (reqwest is built without a default provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
