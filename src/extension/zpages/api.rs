//! The zpages HTTP API: `/api/v1/status`, `/api/v1/tap` (NDJSON stream), `/api/v1/recent`,
//! `/api/v1/config` (secrets masked) and `/api/v1/events` (status as server-sent events for
//! the page). Errors are JSON `{"error": "..."}` with 400 (bad filter) or 503 (too many
//! viewers).

use super::filter::{Filter, FilterParams, Kind};
use super::items::{self, Seen};
use super::observe::now_unix_nano;
use super::status::{self, Rates, Topology};
use super::tap::Event;
use crate::exporter::worker::Exporter;
use crate::telemetry::metrics::Metrics;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest `limit` of `/api/v1/recent`.
pub const MAX_RECENT_LIMIT: usize = 1000;
/// How often an idle tap stream sends a heartbeat line.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Everything the zpages endpoints read.
pub struct Zpages {
    pub topology: Topology,
    /// The effective config with secrets masked.
    pub config: serde_yaml::Value,
    pub metrics: Arc<Metrics>,
    pub exporters: BTreeMap<String, Arc<Exporter>>,
    /// exporter id -> (queue_size, max_bytes)
    pub queue_capacity: BTreeMap<String, (usize, u64)>,
    pub runs: Option<Arc<crate::runs::Registry>>,
    pub rates: Mutex<Rates>,
}

impl Zpages {
    /// Which kind a component id is (receivers win when an id is both).
    pub fn kind_of(&self, id: &str) -> Option<Kind> {
        if self.topology.receivers.contains_key(id) {
            Some(Kind::Receiver)
        } else if self.topology.exporters.contains_key(id) {
            Some(Kind::Exporter)
        } else {
            None
        }
    }

    pub fn status(&self) -> serde_json::Value {
        status::build(&status::Sources {
            topology: &self.topology,
            metrics: &self.metrics,
            exporters: &self.exporters,
            queue_capacity: &self.queue_capacity,
            runs: self.runs.as_deref(),
            rates: &self.rates,
        })
    }

    /// Samples counters for rates; runs until `stop` turns true.
    pub async fn sample_rates(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let c = status::counters(&self.topology, &self.metrics);
            self.rates.lock().sample(Instant::now(), c);
        }
    }

    pub fn filter(&self, p: &FilterParams) -> Result<Filter, String> {
        Filter::parse(p, &|id| self.kind_of(id), now_unix_nano()).map_err(|e| e.to_string())
    }
}

fn json_error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": msg }).to_string(),
    )
        .into_response()
}

fn json_ok(v: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn status_h(State(z): State<Arc<Zpages>>) -> Response {
    json_ok(&z.status())
}

async fn config_h(State(z): State<Arc<Zpages>>) -> Response {
    match serde_json::to_value(&z.config) {
        Ok(v) => json_ok(&v),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn recent_h(State(z): State<Arc<Zpages>>, Query(p): Query<FilterParams>) -> Response {
    let f = match z.filter(&p) {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    if !matches!(
        f.point,
        super::filter::Point::Receivers | super::filter::Point::Receiver(_)
    ) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "recent data is kept at receivers only; component must be a receiver",
        );
    }
    if z.metrics.observe.recent().is_none() {
        return json_error(
            StatusCode::NOT_FOUND,
            "recent data is off (zpages.recent.enabled: false)",
        );
    }
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_RECENT_LIMIT);
    let found = tokio::task::spawn_blocking({
        let z = z.clone();
        move || {
            z.metrics
                .observe
                .recent()
                .map(|r| r.query(&f, limit))
                .unwrap_or_default()
        }
    })
    .await
    .unwrap_or_default();
    json_ok(&serde_json::json!({ "items": found }))
}

/// A line of the tap stream.
fn line(v: &serde_json::Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

async fn tap_h(State(z): State<Arc<Zpages>>, Query(p): Query<FilterParams>) -> Response {
    let f = match z.filter(&p) {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let sub = match z.metrics.observe.tap.subscribe(f.point.clone(), f.signal) {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let limit = p.limit.unwrap_or(0);
    struct St {
        sub: super::tap::Subscription,
        f: Filter,
        sent: usize,
        limit: usize,
        pending: std::collections::VecDeque<Bytes>,
    }
    let st = St {
        sub,
        f,
        sent: 0,
        limit,
        pending: Default::default(),
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(b) = st.pending.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), st));
            }
            if st.limit > 0 && st.sent >= st.limit {
                return None;
            }
            let ev = tokio::time::timeout(HEARTBEAT, st.sub.next()).await;
            match ev {
                Err(_) => {
                    let hb = line(&serde_json::json!({ "heartbeat_unix_nano": now_unix_nano() }));
                    return Some((Ok(hb), st));
                }
                Ok(None) => return None,
                Ok(Some(Event::Gap { items, requests })) => {
                    let g = serde_json::json!({ "gap": { "lost_items": items, "lost_requests": requests } });
                    return Some((Ok(line(&g)), st));
                }
                Ok(Some(Event::Data(t))) => {
                    let component = format!("{}/{}", t.kind.as_str(), t.component);
                    let seen = Seen {
                        component: &component,
                        observed_time_unix_nano: t.observed_time_unix_nano,
                    };
                    for it in items::decode(&t.payload, &seen) {
                        if st.limit > 0 && st.sent >= st.limit {
                            break;
                        }
                        if st.f.matches(&it) {
                            if let Ok(v) = serde_json::to_value(&it) {
                                st.pending.push_back(line(&v));
                            }
                            st.sent += 1;
                        }
                    }
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| json_error(StatusCode::INTERNAL_SERVER_ERROR, "stream"))
}

async fn events_h(State(z): State<Arc<Zpages>>) -> Response {
    let stream = futures::stream::unfold((z, true), |(z, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let ev = format!("event: status\ndata: {}\n\n", z.status());
        Some((Ok::<Bytes, Infallible>(Bytes::from(ev)), (z, false)))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| json_error(StatusCode::INTERNAL_SERVER_ERROR, "stream"))
}

/// The zpages router (API and pages).
pub fn router(z: Arc<Zpages>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/status", get(status_h))
        .route("/api/v1/tap", get(tap_h))
        .route("/api/v1/recent", get(recent_h))
        .route("/api/v1/config", get(config_h))
        .route("/api/v1/events", get(events_h))
        .merge(super::pages::router())
        .nest_service("/mcp", super::mcp::service(z.clone()))
        .with_state(z)
}
