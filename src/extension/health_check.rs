//! The health endpoint (`health_check` extension) and the self-metrics endpoint. Readiness,
//! at the extension's `path`, is 200 while serving and 503 while starting, draining, or
//! while a memory limiter or admission control refuses data (the reasons are in the body's
//! `reasons`), so a load balancer shifts traffic away. Liveness, at [`LIVENESS_PATH`] on the
//! same listener, is 200 whenever the process answers at all.

use crate::telemetry::metrics::Metrics;
use crate::telemetry::readiness::Pressure;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// Liveness path on the health_check listener.
pub const LIVENESS_PATH: &str = "/livez";

/// Process lifecycle and refusals as health reports them.
#[derive(Default)]
pub struct Health(AtomicU8, OnceLock<Arc<Pressure>>);

impl Health {
    const STARTING: u8 = 0;
    const READY: u8 = 1;
    const DRAINING: u8 = 2;

    /// Everything started: readiness answers 200 (unless refusing under pressure).
    pub fn set_ready(&self) {
        self.0.store(Self::READY, Ordering::SeqCst);
    }
    /// Shutdown began: readiness answers 503 so load balancers stop sending.
    pub fn set_draining(&self) {
        self.0.store(Self::DRAINING, Ordering::SeqCst);
    }
    /// True between [`Self::set_ready`] and [`Self::set_draining`].
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::READY
    }
    /// Makes readiness report `p`'s refusing sources.
    pub fn watch_pressure(&self, p: Arc<Pressure>) {
        let _ = self.1.set(p);
    }
    /// Why data is being refused now (empty when it is not).
    pub fn refusing(&self) -> Vec<String> {
        self.1.get().map(|p| p.reasons()).unwrap_or_default()
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
    let (mut code, mut status) = h.describe();
    let reasons = h.refusing();
    let mut body = serde_json::json!({ "status": status, "version": env!("CARGO_PKG_VERSION") });
    if code == StatusCode::OK && !reasons.is_empty() {
        code = StatusCode::SERVICE_UNAVAILABLE;
        status = "Server not available: refusing data";
        body["status"] = status.into();
    }
    if !reasons.is_empty() {
        body["reasons"] = reasons.into();
    }
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn liveness_handler() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "status": "alive", "version": env!("CARGO_PKG_VERSION") }).to_string(),
    )
}

/// Router for the health_check extension: readiness at `path`, liveness at
/// [`LIVENESS_PATH`] (unless `path` is that path).
pub fn health_router(health: Arc<Health>, path: &str) -> axum::Router {
    let mut r = axum::Router::new().route(path, axum::routing::get(health_handler));
    if path != LIVENESS_PATH {
        r = r.route(LIVENESS_PATH, axum::routing::get(liveness_handler));
    }
    r.with_state(health)
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
