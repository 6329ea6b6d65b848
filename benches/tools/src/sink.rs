//! `watchtower-bench sink`: the receiving end of benchmarks and tests. Accepts OTLP/gRPC, OTLP/HTTP
//! (protobuf or JSON, gzip or not), Prometheus remote-write (snappy protobuf) and Loki push
//! (snappy protobuf) on their own ports, counts items and bytes per signal exactly by decoding
//! every request with prost, can add latency and fail a fraction of requests with a given
//! status, and serves its counts as JSON on `GET /counts` (`POST /reset` zeroes them).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use watchtower::pipeline::grpc::{RawCodec, status_with_retry};
use watchtower::pipeline::payload::Signal;
use watchtower::proto::{logproto, prometheus};

/// `watchtower-bench sink` options. Every listener is optional; give `127.0.0.1:0` for a free
/// port.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// OTLP/gRPC listen address.
    #[arg(long)]
    pub grpc: Option<String>,
    /// OTLP/HTTP listen address (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
    #[arg(long)]
    pub http: Option<String>,
    /// Prometheus remote-write listen address (any POST path, e.g. `/api/v1/write`).
    #[arg(long)]
    pub prw: Option<String>,
    /// Loki push listen address (`/loki/api/v1/push`, any POST path).
    #[arg(long)]
    pub loki: Option<String>,
    /// Stats listen address (`GET /counts`, `POST /reset`, `GET /` = ok).
    #[arg(long)]
    pub stats: Option<String>,
    /// Delay before answering each request, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of requests to fail (0..1), spread evenly (deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// HTTP status of failed requests (gRPC: 429 -> RESOURCE_EXHAUSTED with RetryInfo,
    /// 503 -> UNAVAILABLE, 400 -> INVALID_ARGUMENT, other -> INTERNAL).
    #[arg(long, default_value_t = 503)]
    pub fail_status: u16,
    /// Decode OTLP into the complete opentelemetry-proto messages (slower) instead of the
    /// counting-only messages.
    #[arg(long)]
    pub full_decode: bool,
    /// Print the counts on exit.
    #[arg(long)]
    pub quiet: bool,
}

/// Per-kind counters.
#[derive(Default, Debug)]
pub struct Counter {
    pub requests: AtomicU64,
    pub items: AtomicU64,
    /// Decoded (uncompressed) message bytes.
    pub bytes: AtomicU64,
    /// Bytes as received (compressed when the request was).
    pub wire_bytes: AtomicU64,
    /// remote-write: samples (items = samples + histograms); Loki: streams.
    pub extra_a: AtomicU64,
    /// remote-write: histograms; Loki: unused.
    pub extra_b: AtomicU64,
    /// remote-write: time series.
    pub series: AtomicU64,
}

impl Counter {
    fn add(&self, items: u64, bytes: u64, wire: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.wire_bytes.fetch_add(wire, Ordering::Relaxed);
    }

    fn reset(&self) {
        for a in [
            &self.requests,
            &self.items,
            &self.bytes,
            &self.wire_bytes,
            &self.extra_a,
            &self.extra_b,
            &self.series,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything the sink counted.
#[derive(Default, Debug)]
pub struct Counts {
    pub traces: Counter,
    pub metrics: Counter,
    pub logs: Counter,
    pub prw: Counter,
    pub loki: Counter,
    /// Requests failed on purpose (`--fail-rate`), and their items.
    pub failed_requests: AtomicU64,
    pub failed_items: AtomicU64,
    /// Requests that did not decode.
    pub bad_requests: AtomicU64,
    /// Microseconds since start of the last counted request.
    pub last_us: AtomicU64,
    seen: AtomicU64,
}

#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct CounterSnapshot {
    pub requests: u64,
    pub items: u64,
    pub bytes: u64,
    pub wire_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<u64>,
}

/// `GET /counts`. `items` is spans / data points / log records for the OTLP signals,
/// samples + histograms for remote-write, entries for Loki.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub traces: CounterSnapshot,
    pub metrics: CounterSnapshot,
    pub logs: CounterSnapshot,
    pub prw: CounterSnapshot,
    pub loki: CounterSnapshot,
    pub failed_requests: u64,
    pub failed_items: u64,
    pub bad_requests: u64,
    pub uptime_s: f64,
    /// Seconds since start when the last request was counted (0 = none yet).
    pub last_request_s: f64,
}

fn snap(c: &Counter) -> CounterSnapshot {
    CounterSnapshot {
        requests: c.requests.load(Ordering::Relaxed),
        items: c.items.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        wire_bytes: c.wire_bytes.load(Ordering::Relaxed),
        ..Default::default()
    }
}

struct Shared {
    counts: Arc<Counts>,
    started: Instant,
    latency: Duration,
    fail_rate: f64,
    fail_status: u16,
    full_decode: bool,
}

impl Shared {
    fn snapshot(&self) -> Snapshot {
        let c = &self.counts;
        let mut prw = snap(&c.prw);
        prw.samples = Some(c.prw.extra_a.load(Ordering::Relaxed));
        prw.histograms = Some(c.prw.extra_b.load(Ordering::Relaxed));
        prw.series = Some(c.prw.series.load(Ordering::Relaxed));
        let mut loki = snap(&c.loki);
        loki.streams = Some(c.loki.extra_a.load(Ordering::Relaxed));
        Snapshot {
            traces: snap(&c.traces),
            metrics: snap(&c.metrics),
            logs: snap(&c.logs),
            prw,
            loki,
            failed_requests: c.failed_requests.load(Ordering::Relaxed),
            failed_items: c.failed_items.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            uptime_s: self.started.elapsed().as_secs_f64(),
            last_request_s: c.last_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    fn reset(&self) {
        let c = &self.counts;
        for k in [&c.traces, &c.metrics, &c.logs, &c.prw, &c.loki] {
            k.reset();
        }
        for a in [
            &c.failed_requests,
            &c.failed_items,
            &c.bad_requests,
            &c.last_us,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Deterministic failure schedule: request n fails when floor((n+1)r) > floor(nr).
    fn should_fail(&self) -> bool {
        if self.fail_rate <= 0.0 {
            return false;
        }
        let n = self.counts.seen.fetch_add(1, Ordering::Relaxed) as f64;
        let r = self.fail_rate.min(1.0);
        ((n + 1.0) * r).floor() > (n * r).floor()
    }

    fn touch(&self) {
        self.counts
            .last_us
            .store(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

// ---- counting-only messages: real prost decoding that skips what is not counted ----

#[derive(Clone, PartialEq, Message)]
struct Skip {}

#[derive(Clone, PartialEq, Message)]
struct Lean3 {
    /// resource_spans / resource_metrics / resource_logs
    #[prost(message, repeated, tag = "1")]
    resources: Vec<Lean2>,
}

#[derive(Clone, PartialEq, Message)]
struct Lean2 {
    /// scope_spans / scope_metrics / scope_logs
    #[prost(message, repeated, tag = "2")]
    scopes: Vec<Lean1>,
}

#[derive(Clone, PartialEq, Message)]
struct Lean1 {
    /// spans / log_records
    #[prost(message, repeated, tag = "2")]
    items: Vec<Skip>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanScopeMetrics {
    #[prost(message, repeated, tag = "2")]
    metrics: Vec<LeanMetric>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanResourceMetrics {
    #[prost(message, repeated, tag = "2")]
    scopes: Vec<LeanScopeMetrics>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanMetrics {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<LeanResourceMetrics>,
}

#[derive(Clone, PartialEq, Message)]
struct Points {
    #[prost(message, repeated, tag = "1")]
    data_points: Vec<Skip>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanMetric {
    #[prost(message, optional, tag = "5")]
    gauge: Option<Points>,
    #[prost(message, optional, tag = "7")]
    sum: Option<Points>,
    #[prost(message, optional, tag = "9")]
    histogram: Option<Points>,
    #[prost(message, optional, tag = "10")]
    exponential_histogram: Option<Points>,
    #[prost(message, optional, tag = "11")]
    summary: Option<Points>,
}

/// Counts the items of an encoded OTLP export request by decoding it.
pub fn count_otlp(signal: Signal, buf: &[u8], full: bool) -> Result<u64, String> {
    let e = |e: prost::DecodeError| format!("cannot decode {signal} request: {e}");
    if full {
        use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        return Ok(match signal {
            Signal::Traces => trace::v1::ExportTraceServiceRequest::decode(buf)
                .map_err(e)?
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum(),
            Signal::Logs => logs::v1::ExportLogsServiceRequest::decode(buf)
                .map_err(e)?
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum(),
            Signal::Metrics => metrics::v1::ExportMetricsServiceRequest::decode(buf)
                .map_err(e)?
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(g)) => g.data_points.len(),
                    Some(Data::Histogram(g)) => g.data_points.len(),
                    Some(Data::ExponentialHistogram(g)) => g.data_points.len(),
                    Some(Data::Summary(g)) => g.data_points.len(),
                    None => 0,
                } as u64)
                .sum(),
        });
    }
    Ok(match signal {
        Signal::Traces | Signal::Logs => Lean3::decode(buf)
            .map_err(e)?
            .resources
            .iter()
            .flat_map(|r| &r.scopes)
            .map(|s| s.items.len() as u64)
            .sum(),
        Signal::Metrics => LeanMetrics::decode(buf)
            .map_err(e)?
            .resources
            .iter()
            .flat_map(|r| &r.scopes)
            .flat_map(|s| &s.metrics)
            .map(|m| {
                [
                    &m.gauge,
                    &m.sum,
                    &m.histogram,
                    &m.exponential_histogram,
                    &m.summary,
                ]
                .iter()
                .filter_map(|p| p.as_ref())
                .map(|p| p.data_points.len() as u64)
                .sum::<u64>()
            })
            .sum(),
    })
}

/// (samples, histograms, series) of a decoded remote-write request.
pub fn count_prw(buf: &[u8]) -> Result<(u64, u64, u64), String> {
    let w = prometheus::WriteRequest::decode(buf)
        .map_err(|e| format!("cannot decode remote-write request: {e}"))?;
    let samples = w.timeseries.iter().map(|t| t.samples.len() as u64).sum();
    let hist = w.timeseries.iter().map(|t| t.histograms.len() as u64).sum();
    Ok((samples, hist, w.timeseries.len() as u64))
}

/// (entries, streams) of a decoded Loki push request.
pub fn count_loki(buf: &[u8]) -> Result<(u64, u64), String> {
    let p = logproto::PushRequest::decode(buf)
        .map_err(|e| format!("cannot decode Loki push request: {e}"))?;
    let entries = p.streams.iter().map(|s| s.entries.len() as u64).sum();
    Ok((entries, p.streams.len() as u64))
}

// ---- gRPC ----

#[derive(Clone)]
struct GrpcSink {
    shared: Arc<Shared>,
}

struct UnarySink {
    shared: Arc<Shared>,
    signal: Signal,
}

impl tonic::server::UnaryService<Bytes> for UnarySink {
    type Response = Bytes;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tonic::Response<Bytes>, tonic::Status>> + Send>,
    >;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let sh = self.shared.clone();
        let signal = self.signal;
        Box::pin(async move {
            let body = request.into_inner();
            let items = match count_otlp(signal, &body, sh.full_decode) {
                Ok(n) => n,
                Err(m) => {
                    sh.counts.bad_requests.fetch_add(1, Ordering::Relaxed);
                    return Err(tonic::Status::invalid_argument(m));
                }
            };
            if !sh.latency.is_zero() {
                tokio::time::sleep(sh.latency).await;
            }
            if sh.should_fail() {
                sh.counts.failed_requests.fetch_add(1, Ordering::Relaxed);
                sh.counts.failed_items.fetch_add(items, Ordering::Relaxed);
                return Err(grpc_failure(sh.fail_status));
            }
            counter(&sh.counts, signal).add(items, body.len() as u64, body.len() as u64);
            sh.touch();
            Ok(tonic::Response::new(Bytes::new()))
        })
    }
}

fn grpc_failure(status: u16) -> tonic::Status {
    match status {
        429 => status_with_retry(
            tonic::Code::ResourceExhausted,
            "sink: simulated overload",
            Duration::from_millis(100),
        ),
        503 => tonic::Status::unavailable("sink: simulated failure"),
        400 => tonic::Status::invalid_argument("sink: simulated bad request"),
        _ => tonic::Status::internal("sink: simulated failure"),
    }
}

fn counter(c: &Counts, signal: Signal) -> &Counter {
    match signal {
        Signal::Traces => &c.traces,
        Signal::Metrics => &c.metrics,
        Signal::Logs => &c.logs,
    }
}

impl tower::Service<http::Request<Body>> for GrpcSink {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let signal = match req.uri().path() {
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => Signal::Traces,
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => {
                    Signal::Metrics
                }
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => Signal::Logs,
                p => {
                    return Ok(
                        tonic::Status::unimplemented(format!("unknown method {p}")).into_http()
                    );
                }
            };
            use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
            let mut enc = EnabledCompressionEncodings::default();
            enc.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(enc, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(256 << 20), None);
            Ok(grpc.unary(UnarySink { shared, signal }, req).await)
        })
    }
}

// ---- HTTP ----

async fn read_body(headers: &HeaderMap, body: Body) -> Result<(Bytes, u64), String> {
    let raw = body
        .collect()
        .await
        .map_err(|e| format!("error reading body: {e}"))?
        .to_bytes();
    let wire = raw.len() as u64;
    let enc = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => Ok((raw, wire)),
        "gzip" | "x-gzip" => watchtower::receiver::http::gunzip_limited(&raw, 512 << 20)
            .map(|v| (Bytes::from(v), wire))
            .map_err(|e| format!("bad gzip body: {e:?}")),
        "snappy" => snap::raw::Decoder::new()
            .decompress_vec(&raw)
            .map(|v| (Bytes::from(v), wire))
            .map_err(|e| format!("bad snappy body: {e}")),
        other => Err(format!("unsupported Content-Encoding {other}")),
    }
}

fn fail_response(sh: &Shared, items: u64) -> Option<Response> {
    if sh.should_fail() {
        sh.counts.failed_requests.fetch_add(1, Ordering::Relaxed);
        sh.counts.failed_items.fetch_add(items, Ordering::Relaxed);
        let status =
            StatusCode::from_u16(sh.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = (status, "sink: simulated failure").into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("0"),
            );
        }
        return Some(r);
    }
    None
}

fn bad(sh: &Shared, m: String) -> Response {
    sh.counts.bad_requests.fetch_add(1, Ordering::Relaxed);
    (StatusCode::BAD_REQUEST, m).into_response()
}

async fn otlp_http(sh: Arc<Shared>, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let (data, wire) = match read_body(&headers, body).await {
        Ok(v) => v,
        Err(m) => return bad(&sh, m),
    };
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let items = if json {
        match watchtower::receiver::json::json_to_protobuf(signal, &data)
            .map_err(|e| e.to_string())
            .and_then(|p| count_otlp(signal, &p, true))
        {
            Ok(n) => n,
            Err(m) => return bad(&sh, m),
        }
    } else {
        match count_otlp(signal, &data, sh.full_decode) {
            Ok(n) => n,
            Err(m) => return bad(&sh, m),
        }
    };
    if !sh.latency.is_zero() {
        tokio::time::sleep(sh.latency).await;
    }
    if let Some(r) = fail_response(&sh, items) {
        return r;
    }
    counter(&sh.counts, signal).add(items, data.len() as u64, wire);
    sh.touch();
    let ct = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let body: &'static [u8] = if json { b"{}" } else { b"" };
    (StatusCode::OK, [(http::header::CONTENT_TYPE, ct)], body).into_response()
}

/// remote-write bodies are snappy block-compressed regardless of Content-Encoding.
fn unsnappy(headers: &HeaderMap, data: Bytes) -> Result<Bytes, String> {
    let enc = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if enc.eq_ignore_ascii_case("snappy") {
        return Ok(data); // read_body already decompressed
    }
    snap::raw::Decoder::new()
        .decompress_vec(&data)
        .map(Bytes::from)
        .map_err(|e| format!("bad snappy body: {e}"))
}

async fn prw_http(sh: Arc<Shared>, headers: HeaderMap, body: Body) -> Response {
    let (data, wire) = match read_body(&headers, body).await {
        Ok(v) => v,
        Err(m) => return bad(&sh, m),
    };
    let data = match unsnappy(&headers, data) {
        Ok(d) => d,
        Err(m) => return bad(&sh, m),
    };
    let (samples, hist, series) = match count_prw(&data) {
        Ok(v) => v,
        Err(m) => return bad(&sh, m),
    };
    if !sh.latency.is_zero() {
        tokio::time::sleep(sh.latency).await;
    }
    if let Some(r) = fail_response(&sh, samples + hist) {
        return r;
    }
    let c = &sh.counts.prw;
    c.add(samples + hist, data.len() as u64, wire);
    c.extra_a.fetch_add(samples, Ordering::Relaxed);
    c.extra_b.fetch_add(hist, Ordering::Relaxed);
    c.series.fetch_add(series, Ordering::Relaxed);
    sh.touch();
    StatusCode::NO_CONTENT.into_response()
}

async fn loki_http(sh: Arc<Shared>, headers: HeaderMap, body: Body) -> Response {
    let (data, wire) = match read_body(&headers, body).await {
        Ok(v) => v,
        Err(m) => return bad(&sh, m),
    };
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let counted = if json {
        count_loki_json(&data)
    } else {
        unsnappy(&headers, data.clone()).and_then(|d| count_loki(&d))
    };
    let (entries, streams) = match counted {
        Ok(v) => v,
        Err(m) => return bad(&sh, m),
    };
    if !sh.latency.is_zero() {
        tokio::time::sleep(sh.latency).await;
    }
    if let Some(r) = fail_response(&sh, entries) {
        return r;
    }
    let c = &sh.counts.loki;
    c.add(entries, data.len() as u64, wire);
    c.extra_a.fetch_add(streams, Ordering::Relaxed);
    sh.touch();
    StatusCode::NO_CONTENT.into_response()
}

/// Loki's JSON push: `{"streams":[{"stream":{..},"values":[[ts, line], ...]}]}`.
fn count_loki_json(data: &[u8]) -> Result<(u64, u64), String> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("invalid Loki JSON: {e}"))?;
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or("Loki JSON without streams")?;
    let entries = streams
        .iter()
        .map(|s| {
            s.get("values")
                .and_then(|v| v.as_array())
                .map_or(0, |a| a.len() as u64)
        })
        .sum();
    Ok((entries, streams.len() as u64))
}

// ---- assembly ----

/// A running sink.
pub struct Sink {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub prw: Option<SocketAddr>,
    pub loki: Option<SocketAddr>,
    pub stats: Option<SocketAddr>,
    pub counts: Arc<Counts>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sink {
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    pub fn reset(&self) {
        self.shared.reset()
    }

    /// Stops every listener (open requests get a second to finish).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds every configured listener and serves until [`Sink::stop`].
pub async fn start(args: &Args) -> Result<Sink, String> {
    use axum::routing::{any, get, post};
    use watchtower::receiver::serve::{bind, serve};
    let shared = Arc::new(Shared {
        counts: Arc::new(Counts::default()),
        started: Instant::now(),
        latency: Duration::from_millis(args.latency_ms),
        fail_rate: args.fail_rate,
        fail_status: args.fail_status,
        full_decode: args.full_decode,
    });
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let bound = |addr: &Option<String>, app: axum::Router| {
        let addr = addr.clone();
        let stop_rx = stop_rx.clone();
        async move {
            let Some(a) = addr else {
                return Ok::<_, String>(None);
            };
            let l = bind(&a).await?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            let t = tokio::spawn(serve(l, None, app, stop_rx, Duration::from_secs(1)));
            Ok(Some((local, t)))
        }
    };
    let grpc_app = {
        let svc = GrpcSink {
            shared: shared.clone(),
        };
        axum::Router::new().fallback_service(svc)
    };
    let http_app = {
        let mut app = axum::Router::new();
        for (path, signal) in [
            ("/v1/traces", Signal::Traces),
            ("/v1/metrics", Signal::Metrics),
            ("/v1/logs", Signal::Logs),
        ] {
            let sh = shared.clone();
            app = app.route(
                path,
                post(move |headers: HeaderMap, body: Body| {
                    otlp_http(sh.clone(), signal, headers, body)
                }),
            );
        }
        app
    };
    let prw_app = {
        let sh = shared.clone();
        axum::Router::new().fallback(any(move |headers: HeaderMap, body: Body| {
            prw_http(sh.clone(), headers, body)
        }))
    };
    let loki_app = {
        let sh = shared.clone();
        axum::Router::new().fallback(any(move |headers: HeaderMap, body: Body| {
            loki_http(sh.clone(), headers, body)
        }))
    };
    let stats_app = axum::Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/counts",
            get(|State(sh): State<Arc<Shared>>| async move { axum::Json(sh.snapshot()) }),
        )
        .route(
            "/reset",
            post(|State(sh): State<Arc<Shared>>| async move {
                sh.reset();
                "ok"
            }),
        )
        .with_state(shared.clone());
    let mut addrs = [None, None, None, None, None];
    for (k, (addr, app)) in [
        (&args.grpc, grpc_app),
        (&args.http, http_app),
        (&args.prw, prw_app),
        (&args.loki, loki_app),
        (&args.stats, stats_app),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some((a, t)) = bound(addr, app).await? {
            addrs[k] = Some(a);
            tasks.push(t);
        }
    }
    Ok(Sink {
        grpc: addrs[0],
        http: addrs[1],
        prw: addrs[2],
        loki: addrs[3],
        stats: addrs[4],
        counts: shared.counts.clone(),
        shared,
        stop,
        tasks,
    })
}

/// The subcommand: serve until SIGTERM / SIGINT, then print the counts.
pub async fn main(args: Args) -> std::process::ExitCode {
    let sink = match start(&args).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sink: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    // one parseable line for scripts that start the sink on port 0
    println!(
        "sink listening grpc={} http={} prw={} loki={} stats={}",
        show(sink.grpc),
        show(sink.http),
        show(sink.prw),
        show(sink.loki),
        show(sink.stats)
    );
    use tokio::signal::unix::{SignalKind, signal};
    if let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    let snap = sink.snapshot();
    if !args.quiet {
        eprintln!("{}", serde_json::to_string(&snap).unwrap_or_default());
    }
    sink.stop().await;
    std::process::ExitCode::SUCCESS
}
