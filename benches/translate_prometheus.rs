//! Remote-write translation throughput: encoded OTLP batch -> read from the wire, translated,
//! split, protobuf-encoded and snappy-compressed remote-write bodies (everything the exporter
//! does except the HTTP call), in data points per second on one core. Two reference points
//! per mix: `decode_only` (prost decoding the batch into owned structs, which the translator
//! no longer does) and `snappy_only` (compressing the output alone: the floor of the path).
//!
//! Mix: counters, gauges and 15-bucket histograms, 10 attributes per point, one resource
//! with service attributes and a few others, one scope. Run with
//! `cargo bench --bench translate_prometheus`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::hint::black_box;
use watchtower::exporter::prometheusremotewrite::sink::prepare;
use watchtower::translate::prometheus::{Settings, translate_bytes};
use watchtower::translate::snappy::compress as snappy;

const T: u64 = 1_700_000_000_000_000_000;

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

fn attrs(i: usize) -> Vec<KeyValue> {
    vec![
        kv("http.request.method", ["GET", "POST", "PUT"][i % 3].into()),
        kv("http.route", format!("/api/v1/items/{}", i % 50)),
        kv(
            "http.response.status_code",
            ["200", "404", "500"][i % 3].into(),
        ),
        kv("server.address", "api.internal".into()),
        kv("server.port", "8080".into()),
        kv("url.scheme", "https".into()),
        kv("network.protocol.version", "1.1".into()),
        kv("deployment.environment", "qa".into()),
        kv("k8s.pod.name", format!("api-{}", i % 7)),
        kv("shard", format!("{}", i)),
    ]
}

fn ndp(i: usize) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(i),
        time_unix_nano: T + i as u64,
        start_time_unix_nano: T - 60_000_000_000,
        value: Some(number_data_point::Value::AsDouble(i as f64 * 1.5)),
        ..Default::default()
    }
}

fn hdp(i: usize) -> HistogramDataPoint {
    let bounds: Vec<f64> = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0,
    ];
    let counts: Vec<u64> = (0..=bounds.len() as u64)
        .map(|b| b + i as u64 % 5)
        .collect();
    HistogramDataPoint {
        attributes: attrs(i),
        time_unix_nano: T + i as u64,
        start_time_unix_nano: T - 60_000_000_000,
        count: counts.iter().sum(),
        sum: Some(i as f64 * 0.3),
        bucket_counts: counts,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

/// `metrics` metrics of each enabled kind, `points` points each.
fn request(
    counters: bool,
    gauges: bool,
    histograms: bool,
    metrics: usize,
    points: usize,
) -> (Vec<u8>, u64) {
    let mut ms = Vec::new();
    let mut n = 0u64;
    for m in 0..metrics {
        if counters {
            ms.push(Metric {
                name: format!("http.server.requests.{m}"),
                unit: "{request}".into(),
                data: Some(Data::Sum(Sum {
                    data_points: (0..points).map(ndp).collect(),
                    aggregation_temporality: 2,
                    is_monotonic: true,
                })),
                ..Default::default()
            });
            n += points as u64;
        }
        if gauges {
            ms.push(Metric {
                name: format!("process.memory.usage.{m}"),
                unit: "By".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: (0..points).map(ndp).collect(),
                })),
                ..Default::default()
            });
            n += points as u64;
        }
        if histograms {
            ms.push(Metric {
                name: format!("http.server.request.duration.{m}"),
                unit: "s".into(),
                data: Some(Data::Histogram(Histogram {
                    data_points: (0..points).map(hdp).collect(),
                    aggregation_temporality: 2,
                })),
                ..Default::default()
            });
            n += points as u64;
        }
    }
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout".into()),
                    kv("service.namespace", "qa".into()),
                    kv("service.instance.id", "checkout-7f9c".into()),
                    kv("host.name", "node-12".into()),
                    kv("telemetry.sdk.language", "python".into()),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.http".into(),
                    version: "0.48b0".into(),
                    ..Default::default()
                }),
                metrics: ms,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), n)
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let mut g = c.benchmark_group("prw_translate");
    for (label, cnt, gau, his) in [
        ("mix_counter_gauge_histogram15", true, true, true),
        ("counters_and_gauges", true, true, false),
        ("histograms15", false, false, true),
    ] {
        let (bytes, points) = request(cnt, gau, his, 20, 50);
        g.throughput(Throughput::Elements(points));
        // Baseline: only decoding the OTLP batch with prost (a floor for the full path).
        g.bench_function(format!("{label}/decode_only"), |b| {
            b.iter(|| {
                let r = ExportMetricsServiceRequest::decode(black_box(bytes.as_slice()))
                    .expect("decode");
                black_box(r.resource_metrics.len())
            })
        });
        // Ceiling: snappy alone over the uncompressed requests this batch becomes.
        let raw = translate_bytes(&bytes, &settings)
            .expect("translate")
            .requests(3_000_000);
        g.bench_function(format!("{label}/snappy_only"), |b| {
            b.iter(|| {
                let n: usize = raw
                    .iter()
                    .map(|r| snappy(black_box(r)).expect("snappy").len())
                    .sum();
                black_box(n)
            })
        });
        g.bench_function(label, |b| {
            b.iter(|| {
                let p = prepare(black_box(&bytes), &settings, 3_000_000).expect("prepare");
                black_box(p.bodies.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
