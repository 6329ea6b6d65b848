//! In-process OTLP destinations for tests. They decode every request (so a test compares
//! items, not bytes), record it, and follow a script: fail with a status for a while or for
//! N requests, add Retry-After, add latency, or hang until released.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default, Clone)]
pub struct Script {
    /// answer `fail_status` until this instant
    pub fail_until: Option<Instant>,
    /// answer `fail_status` to the next N requests
    pub fail_next: usize,
    pub fail_status: u16,
    pub retry_after_secs: Option<u64>,
    pub latency: Duration,
    /// hold every request until `release()`
    pub hang: bool,
    /// answer trace exports with an OTLP partial success rejecting this many spans
    pub partial_reject: i64,
    /// the partial success's `error_message` (default "scripted partial")
    pub partial_message: Option<String>,
    /// a `Location` header on the scripted failures of trace exports (a redirect)
    pub location: Option<String>,
}

#[derive(Default)]
pub struct Recorded {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// arrival time of every request (accepted or not)
    pub arrivals: Vec<Instant>,
    /// headers (gRPC: metadata) of every decoded request, in arrival order
    pub headers: Vec<HeaderMap>,
}

pub struct CaptureState {
    pub rec: Mutex<Recorded>,
    pub script: Mutex<Script>,
    pub requests: AtomicU64,
    release: tokio::sync::watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Capture {
    pub addr: SocketAddr,
    pub state: Arc<CaptureState>,
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

impl Capture {
    fn new_state() -> Arc<CaptureState> {
        let (release, _) = tokio::sync::watch::channel(false);
        Arc::new(CaptureState {
            rec: Mutex::new(Recorded::default()),
            script: Mutex::new(Script::default()),
            requests: AtomicU64::new(0),
            release,
        })
    }

    /// An OTLP/HTTP destination on a free loopback port.
    pub async fn http() -> Capture {
        let state = Self::new_state();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .route("/v1/metrics", axum::routing::post(http_metrics))
            .route("/v1/logs", axum::routing::post(http_logs))
            .with_state(state.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Capture { addr, state }
    }

    /// An OTLP/gRPC destination on a free loopback port.
    pub async fn grpc() -> Capture {
        let state = Self::new_state();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let g = GrpcCapture(state.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(g.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                        .accept_compressed(tonic::codec::CompressionEncoding::Deflate),
                )
                .add_service(
                    MetricsServiceServer::new(g.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                        .accept_compressed(tonic::codec::CompressionEncoding::Deflate),
                )
                .add_service(
                    LogsServiceServer::new(g)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                        .accept_compressed(tonic::codec::CompressionEncoding::Deflate),
                )
                .serve_with_incoming(tokio_stream_listener(l))
                .await;
        });
        Capture { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_script(&self, s: Script) {
        *self.state.script.lock().unwrap() = s;
    }

    pub fn release(&self) {
        self.state.script.lock().unwrap().hang = false;
        let _ = self.state.release.send(true);
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// (service.name, span) for every span received.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let rec = self.state.rec.lock().unwrap();
        let mut out = Vec::new();
        for req in &rec.traces {
            for rs in &req.resource_spans {
                let svc = rs
                    .resource
                    .as_ref()
                    .and_then(|r| str_attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((svc.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    pub fn span_count(&self) -> usize {
        self.spans().len()
    }

    pub fn span_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.spans().into_iter().map(|(_, s)| s.name).collect();
        v.sort();
        v
    }

    pub fn logs(&self) -> Vec<(String, LogRecord)> {
        let rec = self.state.rec.lock().unwrap();
        let mut out = Vec::new();
        for req in &rec.logs {
            for rl in &req.resource_logs {
                let svc = rl
                    .resource
                    .as_ref()
                    .and_then(|r| str_attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    for l in &sl.log_records {
                        out.push((svc.clone(), l.clone()));
                    }
                }
            }
        }
        out
    }

    /// (metric name, data point count) summed over everything received.
    pub fn metric_points(&self) -> std::collections::BTreeMap<String, usize> {
        let rec = self.state.rec.lock().unwrap();
        let mut out = std::collections::BTreeMap::new();
        for req in &rec.metrics {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        let n = match &m.data {
                            Some(metric::Data::Gauge(g)) => g.data_points.len(),
                            Some(metric::Data::Sum(g)) => g.data_points.len(),
                            Some(metric::Data::Histogram(g)) => g.data_points.len(),
                            Some(metric::Data::ExponentialHistogram(g)) => g.data_points.len(),
                            Some(metric::Data::Summary(g)) => g.data_points.len(),
                            None => 0,
                        };
                        *out.entry(m.name.clone()).or_insert(0) += n;
                    }
                }
            }
        }
        out
    }

    /// Headers (gRPC metadata) of every decoded request.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.state.rec.lock().unwrap().headers.clone()
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.state.rec.lock().unwrap().arrivals.clone()
    }
}

/// What the script says to answer now; `Ok(())` means accept.
async fn scripted(state: &CaptureState) -> Result<(), (u16, Option<u64>)> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.rec.lock().unwrap().arrivals.push(Instant::now());
    let (latency, hang) = {
        let s = state.script.lock().unwrap();
        (s.latency, s.hang)
    };
    if hang {
        let mut rx = state.release.subscribe();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut s = state.script.lock().unwrap();
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return Err((s.fail_status, s.retry_after_secs));
    }
    if s.fail_until.is_some_and(|t| Instant::now() < t) {
        return Err((s.fail_status, s.retry_after_secs));
    }
    Ok(())
}

/// The body decoded per its Content-Encoding, with the codec crates themselves (not the
/// gateway's decoder): gzip, deflate (zlib), zstd, snappy (block), x-snappy-framed, lz4.
fn body_bytes(headers: &HeaderMap, body: Bytes) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match enc {
        "gzip" => {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("deflate");
        }
        "zstd" => out = zstd::stream::decode_all(&body[..]).expect("zstd"),
        "snappy" => {
            out = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .expect("snappy")
        }
        "x-snappy-framed" => {
            snap::read::FrameDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("snappy framed");
        }
        "lz4" => {
            lz4_flex::frame::FrameDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("lz4");
        }
        _ => out = body.to_vec(),
    }
    out
}

fn failure(code: u16, retry_after: Option<u64>) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "scripted failure",
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut().insert("retry-after", s.into());
    }
    r
}

macro_rules! http_handler {
    ($name:ident, $req:ty, $resp:ty, $field:ident) => {
        async fn $name(
            State(st): State<Arc<CaptureState>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            if let Err((code, ra)) = scripted(&st).await {
                return failure(code, ra);
            }
            let data = body_bytes(&headers, body);
            st.rec.lock().unwrap().headers.push(headers.clone());
            match <$req>::decode(&data[..]) {
                Ok(req) => {
                    st.rec.lock().unwrap().$field.push(req);
                    (
                        StatusCode::OK,
                        [("content-type", "application/x-protobuf")],
                        <$resp>::default().encode_to_vec(),
                    )
                        .into_response()
                }
                Err(e) => (
                    StatusCode::BAD_REQUEST,
                    format!("capture cannot decode: {e}"),
                )
                    .into_response(),
            }
        }
    };
}

async fn http_traces(
    State(st): State<Arc<CaptureState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((code, ra)) = scripted(&st).await {
        let mut r = failure(code, ra);
        if let Some(l) = st.script.lock().unwrap().location.clone() {
            r.headers_mut()
                .insert("location", l.parse().expect("location"));
        }
        return r;
    }
    let data = body_bytes(&headers, body);
    st.rec.lock().unwrap().headers.push(headers.clone());
    match ExportTraceServiceRequest::decode(&data[..]) {
        Ok(req) => {
            st.rec.lock().unwrap().traces.push(req);
            let (reject, message) = {
                let s = st.script.lock().unwrap();
                (s.partial_reject, s.partial_message.clone())
            };
            let resp = ExportTraceServiceResponse {
                partial_success: (reject > 0).then(|| {
                    opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                        rejected_spans: reject,
                        error_message: message.unwrap_or_else(|| "scripted partial".into()),
                    }
                }),
            };
            (
                StatusCode::OK,
                [("content-type", "application/x-protobuf")],
                resp.encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("capture cannot decode: {e}"),
        )
            .into_response(),
    }
}
http_handler!(
    http_metrics,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    metrics
);
http_handler!(
    http_logs,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    logs
);

#[derive(Clone)]
struct GrpcCapture(Arc<CaptureState>);

fn grpc_failure(code: u16) -> tonic::Status {
    match code {
        503 => tonic::Status::unavailable("scripted"),
        400 => tonic::Status::invalid_argument("scripted"),
        _ => tonic::Status::internal("scripted"),
    }
}

#[tonic::async_trait]
impl TraceService for GrpcCapture {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        scripted(&self.0).await.map_err(|(c, _)| grpc_failure(c))?;
        let mut rec = self.0.rec.lock().unwrap();
        rec.headers.push(req.metadata().clone().into_headers());
        rec.traces.push(req.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcCapture {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        scripted(&self.0).await.map_err(|(c, _)| grpc_failure(c))?;
        let mut rec = self.0.rec.lock().unwrap();
        rec.headers.push(req.metadata().clone().into_headers());
        rec.metrics.push(req.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcCapture {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        scripted(&self.0).await.map_err(|(c, _)| grpc_failure(c))?;
        let mut rec = self.0.rec.lock().unwrap();
        rec.headers.push(req.metadata().clone().into_headers());
        rec.logs.push(req.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

fn tokio_stream_listener(
    l: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(l, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}
