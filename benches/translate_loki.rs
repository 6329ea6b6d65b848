//! Loki translation throughput: encoded OTLP logs request bytes -> decoded -> Loki push
//! request -> snappy-compressed body (what the exporter does per batch, minus HTTP). Records
//! carry 8 attributes and a 200-byte line; 1000 records per request across 4 resources.
//! Criterion reports records/s (one thread = one core).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::hint::black_box;
use watchtower::translate::loki::builder::PushBuilder;
use watchtower::translate::loki::{
    Format, Options, fast, reader, translate_encoded, translate_reference,
};

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn request(records: usize) -> Vec<u8> {
    let resources = 4;
    let req = ExportLogsServiceRequest {
        resource_logs: (0..resources)
            .map(|r| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue(format!("svc-{r}"))),
                        kv("service.namespace", Value::StringValue("qa".into())),
                        kv("k8s.pod.name", Value::StringValue(format!("pod-{r}-abcde"))),
                        kv("host.name", Value::StringValue("node-1".into())),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    log_records: (0..records / resources)
                        .map(|i| {
                            let base = 1_700_000_000_000_000_000u64 + (i as u64) * 1000;
                            let mut line = format!(
                                "GET /api/v1/items/{i} status=200 duration_ms=12 user=u{i} "
                            );
                            while line.len() < 200 {
                                line.push('x');
                            }
                            LogRecord {
                                time_unix_nano: base,
                                observed_time_unix_nano: base + 5,
                                severity_number: 9,
                                severity_text: "INFO".into(),
                                body: Some(AnyValue {
                                    value: Some(Value::StringValue(line)),
                                }),
                                attributes: vec![
                                    kv("http.method", Value::StringValue("GET".into())),
                                    kv(
                                        "http.route",
                                        Value::StringValue("/api/v1/items/{id}".into()),
                                    ),
                                    kv("http.status_code", Value::IntValue(200)),
                                    kv("user.id", Value::StringValue(format!("u{i}"))),
                                    kv("duration_ms", Value::DoubleValue(12.5)),
                                    kv("retry", Value::BoolValue(false)),
                                    kv("component", Value::StringValue("api".into())),
                                    kv("request.id", Value::StringValue(format!("req-{i:08}"))),
                                ],
                                trace_id: vec![0xab; 16],
                                span_id: vec![0xcd; 8],
                                flags: 1,
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    req.encode_to_vec()
}

/// Walks every record with the zero-copy reader and does nothing else: the fast path's floor.
struct ReadOnly<'a>(Vec<reader::Kv<'a>>, u64);
impl<'a> fast::Mapper<'a> for ReadOnly<'a> {
    fn resource(&mut self, _: &[u8]) -> Result<(), reader::ReadError> {
        Ok(())
    }
    fn scope(&mut self, _: &[u8]) -> Result<(), reader::ReadError> {
        Ok(())
    }
    fn record(&mut self, raw: &'a [u8], _: &mut PushBuilder) -> Result<(), reader::ReadError> {
        if let reader::Parsed::Simple(r) = reader::record(raw, &mut self.0)? {
            self.1 += r.time + self.0.len() as u64;
        }
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let n = 1000;
    let bytes = request(n);
    let mut g = c.benchmark_group("translate_loki");
    g.throughput(Throughput::Elements(n as u64));
    for (name, format) in [("otlp_format", Format::Otlp), ("json_format", Format::Json)] {
        let opts = Options {
            format,
            ..Options::default()
        };
        // What the exporter runs: wire bytes -> push body -> snappy.
        g.bench_function(name, |b| {
            b.iter(|| {
                let t = translate_encoded(black_box(bytes.as_slice()), &opts, 0).expect("valid");
                black_box(watchtower::translate::snappy::compress(&t.body).expect("snappy"))
            })
        });
        // The reference path (the implementation before the fast path): prost decode into
        // owned structs -> owned entries -> encode -> snappy.
        g.bench_function(format!("{name}/reference"), |b| {
            b.iter(|| {
                let req =
                    ExportLogsServiceRequest::decode(black_box(bytes.as_slice())).expect("decode");
                let t = translate_reference(&req, &opts, 0);
                black_box(watchtower::translate::snappy::compress(&t.body).expect("snappy"))
            })
        });
        // Ceiling: snappy of the final uncompressed push body alone.
        let body = translate_encoded(&bytes, &opts, 0).expect("valid").body;
        g.bench_function(format!("{name}/snappy_only"), |b| {
            b.iter(|| {
                black_box(
                    watchtower::translate::snappy::compress(black_box(&body)).expect("snappy"),
                )
            })
        });
    }
    // Floors: prost decode into owned structs alone (what the reference path starts with),
    // and the zero-copy reader alone (what the fast path starts with).
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            black_box(
                ExportLogsServiceRequest::decode(black_box(bytes.as_slice())).expect("decode"),
            )
        })
    });
    g.bench_function("read_only", |b| {
        b.iter(|| {
            let mut m = ReadOnly(Vec::new(), 0);
            let mut out = PushBuilder::default();
            fast::walk(black_box(bytes.as_slice()), &mut m, &mut out).expect("valid");
            black_box(m.1)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
