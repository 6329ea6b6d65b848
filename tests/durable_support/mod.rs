//! Harness of the durable-queue tests (docs/durable.md): an in-test OTLP/HTTP trace destination that
//! records span ids and can be switched down (503) or made slow; trace requests whose span ids
//! are counters; a load driver that remembers which ids got a success answer; the gateway
//! in-process or as a child process (for kill -9).
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A trace destination.
#[derive(Clone, Default)]
pub struct Capture {
    pub down: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    /// every span id received, with repeats
    pub ids: Arc<Mutex<Vec<u64>>>,
    pub requests: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
}

async fn handle(State(c): State<Capture>, headers: HeaderMap, body: Bytes) -> StatusCode {
    c.requests.fetch_add(1, Ordering::SeqCst);
    let d = c.delay_ms.load(Ordering::SeqCst);
    if d > 0 {
        tokio::time::sleep(Duration::from_millis(d)).await;
    }
    if c.down.load(Ordering::SeqCst) {
        c.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let raw = if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        use std::io::Read;
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return StatusCode::BAD_REQUEST;
        }
        out
    } else {
        body.to_vec()
    };
    let Ok(req) = ExportTraceServiceRequest::decode(&raw[..]) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut ids = c.ids.lock();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                if let Ok(b) = <[u8; 8]>::try_from(&s.span_id[..]) {
                    ids.push(u64::from_be_bytes(b));
                }
            }
        }
    }
    StatusCode::OK
}

impl Capture {
    /// Serves on 127.0.0.1 (port 0 = any).
    pub async fn start(port: u16) -> (Capture, SocketAddr) {
        let c = Capture::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(handle))
            .with_state(c.clone());
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind capture");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (c, addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn unique(&self) -> BTreeSet<u64> {
        self.ids.lock().iter().copied().collect()
    }

    /// (received, duplicates)
    pub fn counts(&self) -> (usize, usize) {
        let ids = self.ids.lock();
        let u: BTreeSet<u64> = ids.iter().copied().collect();
        (ids.len(), ids.len() - u.len())
    }
}

/// An encoded trace request with `n` spans whose span ids are `first..first+n`.
pub fn trace_request(first: u64, n: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: [i.to_be_bytes(), i.to_be_bytes()].concat(),
            span_id: i.to_be_bytes().to_vec(),
            name: format!("span-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_000_100_000 + i,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("durable-test".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

pub fn client() -> reqwest::Client {
    watchtower::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// What a load run saw.
#[derive(Default)]
pub struct LoadResult {
    /// span ids of requests answered 200
    pub acked: BTreeSet<u64>,
    /// status -> count (0 = transport error)
    pub statuses: HashMap<u16, u64>,
    /// latencies of answered-200 requests
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn p99(&mut self) -> Duration {
        self.latencies.sort();
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n * 99) / 100).min(n - 1)]
    }
}

/// Closed-loop load: `conc` clients send requests of `per_req` spans to `url` until `stop`
/// is set or `max_requests` were sent. Ids are `base + k * per_req ..`.
pub async fn load(
    url: String,
    conc: usize,
    per_req: u64,
    base: u64,
    max_requests: u64,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> LoadResult {
    let next = Arc::new(AtomicU64::new(0));
    let result = Arc::new(Mutex::new(LoadResult::default()));
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (url, next, result, stop) =
                (url.clone(), next.clone(), result.clone(), stop.clone());
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::SeqCst) {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= max_requests {
                        break;
                    }
                    let first = base + k * per_req;
                    let t0 = Instant::now();
                    let r = c
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(trace_request(first, per_req))
                        .send()
                        .await;
                    let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                    {
                        let mut res = result.lock();
                        *res.statuses.entry(status).or_default() += 1;
                        if status == 200 {
                            res.acked.extend(first..first + per_req);
                            res.latencies.push(t0.elapsed());
                        }
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let mut r = result.lock();
    std::mem::take(&mut *r)
}

/// Waits until `f` holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway config: OTLP/HTTP in on `http`, one otlphttp exporter per (name, destination,
/// sending_queue extra) into `file_storage` at `dir`.
pub fn config(
    http: &str,
    dir: &str,
    exporters: &[(&str, SocketAddr, &str)],
    extra: &str,
) -> String {
    let mut ex = String::new();
    let mut names = Vec::new();
    for (name, addr, queue) in exporters {
        names.push(format!("otlphttp/{name}"));
        ex.push_str(&format!(
            "  otlphttp/{name}:\n    endpoint: \"http://{addr}\"\n    compression: none\n    sending_queue: {{ storage: file_storage, num_consumers: 2, {queue} }}\n    retry_on_failure: {{ initial_interval: 100ms, max_interval: 400ms, max_elapsed_time: 0 }}\n"
        ));
    }
    let extra = if extra.is_empty() {
        "  telemetry: { metrics: { address: \"127.0.0.1:0\" } }\n"
    } else {
        extra
    };
    format!(
        "receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: \"{http}\" }}\nexporters:\n{ex}extensions:\n  file_storage: {{ directory: \"{dir}\", fsync: group }}\nservice:\n  extensions: [file_storage]\n  shutdown_timeout: 1s\n{extra}  pipelines:\n    traces: {{ receivers: [otlp], exporters: [{}] }}\n",
        names.join(", ")
    )
}

/// Starts the gateway in this process.
pub async fn start_app(yaml: &str) -> watchtower::app::App {
    let cfg = watchtower::config::parse(yaml, &|_| None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    watchtower::app::App::start(cfg).await.expect("start")
}

pub fn http_url(app: &watchtower::app::App) -> String {
    format!("http://{}/v1/traces", app.bound.http["otlp"])
}

/// Reads a metric sample (first line starting with `prefix`) from a text exposition.
pub fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The gateway binary (`WATCHTOWER_BIN` wins, as `make test` sets it).
pub fn gateway_bin() -> String {
    std::env::var("WATCHTOWER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchtower").to_string())
}
