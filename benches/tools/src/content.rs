//! Realistic OTLP content for the load generator and the micro-benchmarks: several services,
//! traces of nested spans, gauges / cumulative sums / histograms with buckets, log records
//! with bodies. Requests are built (and encoded) up front so that sending them is cheap.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use watchtower::pipeline::payload::Signal;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOpts {
    pub signal: Signal,
    /// Spans, metric data points or log records per request.
    pub items_per_request: usize,
    /// Attributes per item (realistic ones first, then `attr.N` fillers).
    pub attributes: usize,
    /// Extra bytes per item, as a `payload` string attribute (0 = none).
    pub payload_bytes: usize,
    /// Distinct services (one resource per request, round robin).
    pub services: usize,
    pub seed: u64,
}

impl Default for GenOpts {
    fn default() -> Self {
        GenOpts {
            signal: Signal::Traces,
            items_per_request: 100,
            attributes: 8,
            payload_bytes: 0,
            services: 5,
            seed: 1,
        }
    }
}

/// One pre-encoded request.
#[derive(Clone, Debug)]
pub struct GenRequest {
    /// Encoded `Export*ServiceRequest`.
    pub proto: Bytes,
    /// The same request as OTLP/JSON, when asked for.
    pub json: Option<Bytes>,
    /// Spans, data points or log records in it.
    pub items: u64,
}

const SERVICES: &[&str] = &[
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "currency",
    "email",
    "ad",
    "recommendation",
    "product-catalog",
    "quote",
    "fraud-detection",
];
const ROUTES: &[&str] = &[
    "/api/cart",
    "/api/checkout",
    "/api/products/{id}",
    "/api/recommendations",
    "/api/currency",
    "/api/shipping/quote",
    "/healthz",
];
const DB_OPS: &[&str] = &[
    "SELECT products",
    "SELECT cart_items",
    "INSERT orders",
    "UPDATE inventory",
    "redis GET",
    "redis SET",
];

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn i(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

fn service_name(idx: usize) -> String {
    if idx < SERVICES.len() {
        SERVICES[idx].to_string()
    } else {
        format!("service-{idx}")
    }
}

fn resource(svc: usize) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", s(service_name(svc))),
            kv("service.namespace", s("shop")),
            kv("service.version", s("1.4.2")),
            kv(
                "service.instance.id",
                s(format!("{}-7c9f8d-{svc:02}", service_name(svc))),
            ),
            kv("deployment.environment.name", s("bench")),
            kv("host.name", s(format!("node-{}", svc % 3))),
            kv("telemetry.sdk.language", s("rust")),
            kv("telemetry.sdk.name", s("opentelemetry")),
        ],
        ..Default::default()
    }
}

fn scope(name: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.to_string(),
        version: "0.33.0".into(),
        ..Default::default()
    }
}

/// `n` item attributes: realistic first, then fillers, plus the payload attribute.
fn item_attrs(rng: &mut StdRng, n: usize, payload: usize, realistic: &[KeyValue]) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = realistic.iter().take(n).cloned().collect();
    let mut k = out.len();
    while out.len() < n {
        out.push(kv(
            &format!("attr.{k}"),
            s(format!("value-{}", rng.gen_range(0..1000))),
        ));
        k += 1;
    }
    if payload > 0 {
        let body: String = (0..payload)
            .map(|_| (b'a' + rng.gen_range(0..26u8)) as char)
            .collect();
        out.push(kv("payload", s(body)));
    }
    out
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Builds `count` requests (request `k` uses service `k % services`).
pub fn pool(opts: &GenOpts, count: usize, with_json: bool) -> Vec<GenRequest> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    (0..count.max(1))
        .map(|k| {
            let svc = k % opts.services.max(1);
            match opts.signal {
                Signal::Traces => {
                    let req = traces(&mut rng, opts, svc);
                    finish(
                        req.encode_to_vec(),
                        with_json.then(|| serde_json::to_vec(&req)),
                        opts,
                    )
                }
                Signal::Metrics => {
                    let req = metrics(&mut rng, opts, svc);
                    finish(
                        req.encode_to_vec(),
                        with_json.then(|| serde_json::to_vec(&req)),
                        opts,
                    )
                }
                Signal::Logs => {
                    let req = logs(&mut rng, opts, svc);
                    finish(
                        req.encode_to_vec(),
                        with_json.then(|| serde_json::to_vec(&req)),
                        opts,
                    )
                }
            }
        })
        .collect()
}

fn finish(
    proto: Vec<u8>,
    json: Option<Result<Vec<u8>, serde_json::Error>>,
    opts: &GenOpts,
) -> GenRequest {
    GenRequest {
        proto: proto.into(),
        json: json.map(|j| j.expect("OTLP types serialize to JSON").into()),
        items: opts.items_per_request as u64,
    }
}

/// One request of `items_per_request` spans from one service: traces of up to 8 spans, each
/// child under a random earlier span of its trace (a server span with db / cache / client
/// children, some nested).
pub fn traces(rng: &mut StdRng, opts: &GenOpts, svc: usize) -> ExportTraceServiceRequest {
    let n = opts.items_per_request;
    let t0 = now_nanos();
    let mut spans = Vec::with_capacity(n);
    let mut trace_id = [0u8; 16];
    let mut ids: Vec<[u8; 8]> = Vec::new();
    for k in 0..n {
        let pos = k % 8;
        if pos == 0 {
            rng.fill(&mut trace_id);
            ids.clear();
        }
        let mut id = [0u8; 8];
        rng.fill(&mut id);
        let start = t0 + (k as u64) * 1_000_000;
        let (name, kind, realistic, parent) = if pos == 0 {
            let route = ROUTES[rng.gen_range(0..ROUTES.len())];
            (
                format!("GET {route}"),
                span::SpanKind::Server,
                vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s(route)),
                    kv(
                        "http.response.status_code",
                        i(if rng.gen_bool(0.02) { 500 } else { 200 }),
                    ),
                    kv("url.scheme", s("http")),
                    kv(
                        "server.address",
                        s(format!("{}.shop.svc", service_name(svc))),
                    ),
                    kv("user_agent.original", s("Mozilla/5.0 (X11; Linux x86_64)")),
                    kv("network.protocol.version", s("1.1")),
                    kv(
                        "client.address",
                        s(format!(
                            "10.0.{}.{}",
                            rng.gen_range(0..255),
                            rng.gen_range(1..255)
                        )),
                    ),
                ],
                Vec::new(),
            )
        } else {
            let parent = ids[rng.gen_range(0..ids.len())].to_vec();
            if rng.gen_bool(0.5) {
                let op = DB_OPS[rng.gen_range(0..DB_OPS.len())];
                (
                    op.to_string(),
                    span::SpanKind::Client,
                    vec![
                        kv(
                            "db.system",
                            s(if op.starts_with("redis") {
                                "redis"
                            } else {
                                "postgresql"
                            }),
                        ),
                        kv("db.query.text", s(format!("{op} WHERE id = $1"))),
                        kv("server.address", s("db.shop.svc")),
                        kv("server.port", i(5432)),
                        kv("db.namespace", s("shop")),
                        kv("db.response.returned_rows", i(rng.gen_range(0..50))),
                        kv("network.peer.address", s("10.1.0.7")),
                        kv("thread.id", i(rng.gen_range(1..64))),
                    ],
                    parent,
                )
            } else {
                (
                    format!(
                        "{}.{}",
                        service_name(svc),
                        ["validate", "render", "compute", "serialize"][pos % 4]
                    ),
                    span::SpanKind::Internal,
                    vec![
                        kv("code.function.name", s("handle_request")),
                        kv("code.file.path", s("src/handler.rs")),
                        kv("code.line.number", i(rng.gen_range(1..900))),
                        kv("thread.id", i(rng.gen_range(1..64))),
                        kv("app.items", i(rng.gen_range(0..20))),
                        kv(
                            "app.cache_hit",
                            any_value::Value::BoolValue(rng.gen_bool(0.7)),
                        ),
                        kv("app.tenant", s(format!("tenant-{}", rng.gen_range(0..40)))),
                        kv("app.region", s("eu-west-1")),
                    ],
                    parent,
                )
            }
        };
        ids.push(id);
        let dur = rng.gen_range(100_000..50_000_000u64);
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: item_attrs(rng, opts.attributes, opts.payload_bytes, &realistic),
            status: Some(Status {
                code: 1,
                ..Default::default()
            }),
            flags: 0x100,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(svc)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope("io.opentelemetry.http")),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One request of exactly `items_per_request` data points: metrics of 4 points each (4
/// attribute sets), cycling gauge, cumulative monotonic sum and histogram (10 buckets).
pub fn metrics(rng: &mut StdRng, opts: &GenOpts, svc: usize) -> ExportMetricsServiceRequest {
    let n = opts.items_per_request;
    let t = now_nanos();
    let start = t - 60_000_000_000;
    let mut metrics = Vec::new();
    let mut made = 0;
    let mut m = 0;
    while made < n {
        let points = (n - made).min(4);
        let attrs = |rng: &mut StdRng, p: usize| {
            item_attrs(
                rng,
                opts.attributes,
                opts.payload_bytes,
                &[
                    kv("http.route", s(ROUTES[p % ROUTES.len()])),
                    kv("http.request.method", s("GET")),
                    kv("http.response.status_code", i(200)),
                    kv(
                        "server.address",
                        s(format!("{}.shop.svc", service_name(svc))),
                    ),
                ],
            )
        };
        let data = match m % 3 {
            0 => metric::Data::Gauge(Gauge {
                data_points: (0..points)
                    .map(|p| NumberDataPoint {
                        attributes: attrs(rng, p),
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsDouble(
                            rng.gen_range(0.0..100.0),
                        )),
                        ..Default::default()
                    })
                    .collect(),
            }),
            1 => metric::Data::Sum(Sum {
                data_points: (0..points)
                    .map(|p| NumberDataPoint {
                        attributes: attrs(rng, p),
                        start_time_unix_nano: start,
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsInt(rng.gen_range(0..1_000_000))),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            _ => metric::Data::Histogram(Histogram {
                data_points: (0..points)
                    .map(|p| {
                        let bounds = vec![5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 1000.0];
                        let counts: Vec<u64> =
                            (0..=bounds.len()).map(|_| rng.gen_range(0..100)).collect();
                        let count = counts.iter().sum();
                        HistogramDataPoint {
                            attributes: attrs(rng, p),
                            start_time_unix_nano: start,
                            time_unix_nano: t,
                            count,
                            sum: Some(count as f64 * 42.5),
                            bucket_counts: counts,
                            explicit_bounds: bounds,
                            min: Some(0.4),
                            max: Some(1800.0),
                            ..Default::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        };
        let (name, unit, desc) = match m % 3 {
            0 => ("process.cpu.utilization", "1", "CPU utilization"),
            1 => ("http.server.request.count", "{request}", "Requests served"),
            _ => ("http.server.request.duration", "ms", "Request duration"),
        };
        metrics.push(Metric {
            name: format!("{name}.{}", m / 3),
            description: desc.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        });
        made += points;
        m += 1;
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(svc)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope("io.opentelemetry.runtime")),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One request of `items_per_request` log records with access-log / application bodies.
pub fn logs(rng: &mut StdRng, opts: &GenOpts, svc: usize) -> ExportLogsServiceRequest {
    let t = now_nanos();
    let records = (0..opts.items_per_request)
        .map(|k| {
            let mut tid = [0u8; 16];
            let mut sid = [0u8; 8];
            rng.fill(&mut tid);
            rng.fill(&mut sid);
            let (sev, text, body) = match rng.gen_range(0..10) {
                0 => (
                    17,
                    "ERROR",
                    format!(
                        "failed to reserve inventory for order {}: connection reset by peer (retry {} of 3)",
                        rng.gen_range(10000..99999),
                        rng.gen_range(1..4)
                    ),
                ),
                1 | 2 => (
                    13,
                    "WARN",
                    format!("slow query took {}ms: SELECT * FROM products WHERE id = $1", rng.gen_range(200..2000)),
                ),
                _ => (
                    9,
                    "INFO",
                    format!(
                        "10.0.{}.{} - - \"GET {} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\" {}ms",
                        rng.gen_range(0..255),
                        rng.gen_range(1..255),
                        ROUTES[rng.gen_range(0..ROUTES.len())],
                        rng.gen_range(100..20000),
                        rng.gen_range(1..300)
                    ),
                ),
            };
            LogRecord {
                time_unix_nano: t + k as u64 * 1000,
                observed_time_unix_nano: t + k as u64 * 1000 + 500,
                severity_number: sev,
                severity_text: text.into(),
                body: Some(AnyValue { value: Some(s(body)) }),
                attributes: {
                    let realistic = [
                        kv("log.file.name", s("app.log")),
                        kv("log.iostream", s("stdout")),
                        kv("code.function.name", s("handle_request")),
                        kv("thread.name", s(format!("worker-{}", rng.gen_range(0..16)))),
                        kv("user.id", s(format!("u{}", rng.gen_range(0..5000)))),
                    ];
                    item_attrs(rng, opts.attributes, opts.payload_bytes, &realistic)
                },
                trace_id: tid.to_vec(),
                span_id: sid.to_vec(),
                flags: 1,
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(svc)),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope("app.logger")),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
