//! The runs control API, served on the health_check endpoint:
//! `POST /runs`, `POST /runs/{id}/end`, `GET /runs` (paginated), `GET /runs/{id}` (JSON; see
//! docs/runs.md). Request bodies are capped at [`MAX_START_BODY_BYTES`] (413 beyond).

use crate::runs::limits::MAX_START_BODY_BYTES;
use crate::runs::registry::{PageRequest, StartRequest};
use crate::runs::{Registry, RunsError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::BTreeMap;
use std::sync::Arc;

fn json(code: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn error(e: RunsError) -> Response {
    let code = match e {
        RunsError::NotFound(_) => StatusCode::NOT_FOUND,
        RunsError::Conflict(_) => StatusCode::CONFLICT,
        RunsError::Invalid(_) => StatusCode::BAD_REQUEST,
        RunsError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    json(code, &serde_json::json!({ "error": e.to_string() }))
}

async fn start(State(reg): State<Arc<Registry>>, body: Bytes) -> Response {
    let req: StartRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        StartRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(RunsError::Invalid(format!("invalid JSON: {e}"))),
        }
    };
    match reg.start(req) {
        Ok(s) => json(StatusCode::CREATED, &s),
        Err(e) => error(e),
    }
}

async fn end(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    match reg.end(&id).await {
        Ok(s) => json(StatusCode::OK, &s),
        Err(e) => error(e),
    }
}

async fn list(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    match PageRequest::parse(&q) {
        Ok(p) => json(StatusCode::OK, &reg.list_page(&p)),
        Err(e) => error(e),
    }
}

async fn show(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    match reg.get(&id) {
        Some(s) => json(StatusCode::OK, &s),
        None => error(RunsError::NotFound(id)),
    }
}

/// Routes to merge into the health_check extension's router.
pub fn router(reg: Arc<Registry>) -> axum::Router {
    axum::Router::new()
        .route("/runs", post(start).get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/end", post(end))
        .layer(DefaultBodyLimit::max(MAX_START_BODY_BYTES))
        .with_state(reg)
}
