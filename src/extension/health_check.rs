//! The health endpoint (`health_check` extension) and the self-metrics endpoint. Health is
//! 200 while serving and 503 while starting or draining, as the Collector's extension.

use crate::telemetry::metrics::Metrics;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Process lifecycle as health reports it.
#[derive(Default)]
pub struct Health(AtomicU8);

impl Health {
    const STARTING: u8 = 0;
    const READY: u8 = 1;
    const DRAINING: u8 = 2;

    pub fn set_ready(&self) {
        self.0.store(Self::READY, Ordering::SeqCst);
    }
    pub fn set_draining(&self) {
        self.0.store(Self::DRAINING, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::READY
    }
    fn describe(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::SeqCst) {
            Self::STARTING => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Server not available: starting",
            ),
            Self::READY => (StatusCode::OK, "Server available"),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Server not available: draining",
            ),
        }
    }
}

async fn health_handler(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let (code, status) = h.describe();
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "status": status, "version": env!("CARGO_PKG_VERSION") }).to_string(),
    )
}

/// Router for the health_check extension at `path`.
pub fn health_router(health: Arc<Health>, path: &str) -> axum::Router {
    axum::Router::new()
        .route(path, axum::routing::get(health_handler))
        .with_state(health)
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Router for `service.telemetry.metrics.address`: `GET /metrics`.
pub fn metrics_router(m: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(m)
}
