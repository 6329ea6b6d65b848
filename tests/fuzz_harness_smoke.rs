//! Runs the fuzz harnesses (`fuzz/harness.rs`, the same code the cargo-fuzz targets run) on
//! stable, in `make test`: seed inputs plus a few thousand deterministic mutations each
//! (bit flips, truncations, splices, random bytes). Not coverage-guided: it keeps the
//! harnesses compiling and catches shallow panics; `make fuzz` runs the real fuzzer.

#[path = "../fuzz/harness.rs"]
mod harness;

use prost::Message;

const JSON_TRACE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000","attributes":[{"key":"n","value":{"intValue":"3"}}],"status":{"code":1}}]}]}]}"#;
const JSON_LOGS: &str = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":9,"body":{"stringValue":"hello"}}]}]}]}"#;
const JSON_METRICS: &str = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asInt":"5","timeUnixNano":"1700000000000000000"}]}}]}]}]}"#;
const CONFIG: &str = "receivers:\n  otlp:\n    protocols:\n      http: { endpoint: 127.0.0.1:4318 }\nexporters:\n  otlphttp/a: { endpoint: \"http://x:1\", sending_queue: { storage: file_storage } }\nextensions:\n  file_storage: { directory: /tmp/x }\nservice:\n  extensions: [file_storage]\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp/a] }\n";

fn trace_pb() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..3u64)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: i.to_be_bytes().to_vec(),
                        name: "op".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// xorshift: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => d.truncate(rng.below(d.len() + 1)),
            2 => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(d.len() + 1);
                let from = rng.below(other.len() + 1);
                d.splice(at..at, other[from..].iter().copied());
            }
            3 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            4 => d.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
            _ => {
                let i = rng.below(d.len() + 1);
                d.insert(i, [0u8, 0xff, 0x7f, 0x80][rng.below(4)]);
            }
        }
    }
    d
}

fn run(name: &str, seeds: Vec<Vec<u8>>, f: fn(&[u8]), n: usize) {
    for s in &seeds {
        f(s);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for _ in 0..n {
        f(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn wire_harness() {
    let pb = trace_pb();
    run(
        "wire",
        vec![pb.clone(), [pb.clone(), pb].concat(), vec![]],
        harness::wire,
        5000,
    );
}

#[test]
fn json_harness() {
    run(
        "json",
        vec![
            JSON_TRACE.into(),
            JSON_LOGS.into(),
            JSON_METRICS.into(),
            // found by the fuzzer: a 12-byte trace id in valid hex
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"6b8efff79803810300000000"}]}]}]}"#.to_vec(),
        ],
        harness::json,
        3000,
    );
}

#[test]
fn gzip_harness() {
    let big = gz(&vec![0u8; 4 << 20]);
    run(
        "gzip",
        vec![
            gz(&trace_pb()),
            gz(b""),
            big,
            zstd::bulk::compress(&trace_pb(), 1).unwrap(),
            snap::raw::Encoder::new().compress_vec(&trace_pb()).unwrap(),
            {
                use std::io::Write;
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(&trace_pb()).unwrap();
                e.finish().unwrap()
            },
        ],
        harness::gzip,
        300,
    );
}

#[test]
fn record_harness() {
    use watchtower::pipeline::payload::Signal;
    use watchtower::queue::durable::record::{encode_acks, encode_data};
    let mut f = Vec::new();
    encode_data(&mut f, 1, Signal::Traces, 3, &trace_pb());
    encode_data(&mut f, 2, Signal::Logs, 1, b"x");
    encode_acks(&mut f, &[1, 2]);
    run("record", vec![f, vec![]], harness::record, 5000);
}

#[test]
fn config_harness() {
    run(
        "config",
        vec![CONFIG.into(), b"service: {}".to_vec()],
        harness::config,
        1500,
    );
}

fn metrics_pb() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, metric, number_data_point,
    };
    let gauge = Metric {
        name: "cpu.usage".into(),
        unit: "1".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: 1_700_000_000_000_000_000,
                value: Some(number_data_point::Value::AsDouble(0.5)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let hist = Metric {
        name: "http.server.duration".into(),
        unit: "ms".into(),
        data: Some(metric::Data::Histogram(Histogram {
            aggregation_temporality: 2,
            data_points: vec![HistogramDataPoint {
                time_unix_nano: 1_700_000_000_000_000_000,
                count: 3,
                sum: Some(12.0),
                bucket_counts: vec![1, 1, 1],
                explicit_bounds: vec![1.0, 10.0],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![gauge, hist],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs_pb() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let s = |v: &str| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: s("svc"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    severity_text: "INFO".into(),
                    body: s("hello"),
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: s("v"),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn prw_harness() {
    // seeds found by the fuzzer: a key above u32::MAX the validator accepted; a histogram
    // with a length-delimited field 3 (unknown in Histogram, `is_monotonic` only in Sum) that
    // the translator refused
    let key = vec![0xd0, 0xcf, 0xcf, 0xe8, 0x7a, 0x21];
    let unknown = b"\x0a\x10\x12\x0a\x12\x08\x0a\x00\x4a\x04\x10\x02\x1a\x00\x0a\x00\x0a\x00\x0a\x10\x12\x0a\x12\x08\x0a\x00\x4a\x04\x10\x02\x2a\x00\x0a\x00\x0a\x00".to_vec();
    run("prw", vec![metrics_pb(), key, unknown], harness::prw, 2000);
}

#[test]
fn loki_harness() {
    run("loki", vec![logs_pb()], harness::loki, 2000);
}
