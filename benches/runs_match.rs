//! Cost of stamping `test.run.id` with many open runs: one 100-span OTLP trace request (one
//! resource of 12 attributes) through `Registry::stamp` with 1 open run, and with 100 open
//! runs whose 16-key filters the resource misses or matches. The precomputed index makes the
//! cost independent of the number of filter keys.

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::BTreeMap;
use watchtower::pipeline::payload::{Payload, Signal};
use watchtower::runs::registry::StartRequest;
use watchtower::runs::{Registry, RunsConfig};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request() -> Payload {
    let mut attributes = vec![
        kv("service.name", "checkout"),
        kv("service.namespace", "qa"),
    ];
    attributes.extend((0..10).map(|i| kv(&format!("attr.{i}"), "value")));
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..100u64)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: i.to_be_bytes().to_vec(),
                        name: "GET /cart".into(),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Payload::new(Signal::Traces, req.encode_to_vec().into(), 100)
}

/// A registry with `n` open runs; run `i` filters on 16 keys, which the request matches only
/// for the run named by `matching`.
fn registry(n: usize, matching: Option<usize>) -> std::sync::Arc<Registry> {
    let reg = Registry::new(RunsConfig::default(), None).expect("registry");
    for i in 0..n {
        let matchers: BTreeMap<String, String> = if matching == Some(i) {
            let mut m: BTreeMap<String, String> = (0..10)
                .map(|k| (format!("attr.{k}"), "value".into()))
                .collect();
            m.insert("service.namespace".into(), "qa".into());
            m
        } else {
            (0..16)
                .map(|k| (format!("filter.{k}"), format!("run-{i}")))
                .collect()
        };
        reg.start(StartRequest {
            id: Some(format!("run-{i}")),
            matchers,
            ..Default::default()
        })
        .expect("start");
    }
    reg
}

fn stamping(c: &mut Criterion) {
    let p = request();
    let mut g = c.benchmark_group("runs_stamp_100_spans");
    for (name, reg) in [
        ("1_run_match_all", registry(0, None)),
        ("100_runs_16_keys_no_match", registry(100, None)),
        ("100_runs_16_keys_last_matches", registry(100, Some(0))),
    ] {
        if name == "1_run_match_all" {
            reg.start(StartRequest::default()).expect("start");
        }
        g.bench_function(name, |b| {
            b.iter(|| reg.stamp(p.clone()).expect("stamp"));
        });
    }
    g.finish();
}

criterion_group!(benches, stamping);
criterion_main!(benches);
