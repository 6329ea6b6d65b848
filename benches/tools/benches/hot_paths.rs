//! Micro-benchmarks of the data path's hot spots: receive-side wire validation and item
//! counting, batching by concatenation, OTLP/JSON -> protobuf at the edge, and the sink's
//! prost decode (what a full decode of the same request costs, for comparison).
//! `cargo bench -p watchtower-bench --bench hot_paths` (add `-- --quick` for a short run).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use watchtower::exporter::worker::concat;
use watchtower::pipeline::payload::{Payload, Signal};
use watchtower::pipeline::wire::validate_and_count;
use watchtower::receiver::json::json_to_protobuf;
use watchtower_bench::content::{GenOpts, pool};
use watchtower_bench::sink::count_otlp;

fn requests(
    signal: Signal,
    items: usize,
    json: bool,
) -> Vec<watchtower_bench::content::GenRequest> {
    pool(
        &GenOpts {
            signal,
            items_per_request: items,
            ..Default::default()
        },
        8,
        json,
    )
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate_and_count");
    for signal in Signal::ALL {
        let reqs = requests(signal, 100, false);
        let r = &reqs[0];
        g.throughput(Throughput::Elements(r.items));
        g.bench_with_input(
            BenchmarkId::new(signal.as_str(), r.proto.len()),
            &r.proto,
            |b, p| b.iter(|| validate_and_count(signal, black_box(p)).unwrap()),
        );
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("prost_decode_count");
    for signal in Signal::ALL {
        let reqs = requests(signal, 100, false);
        let r = &reqs[0];
        g.throughput(Throughput::Elements(r.items));
        g.bench_with_input(
            BenchmarkId::new(format!("{signal}/lean"), r.proto.len()),
            &r.proto,
            |b, p| b.iter(|| count_otlp(signal, black_box(p), false).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{signal}/full"), r.proto.len()),
            &r.proto,
            |b, p| b.iter(|| count_otlp(signal, black_box(p), true).unwrap()),
        );
    }
    g.finish();
}

fn batching(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_concat");
    let reqs = requests(Signal::Traces, 100, false);
    for parts in [1usize, 8, 82] {
        let payloads: Vec<Payload> = (0..parts)
            .map(|k| {
                let r = &reqs[k % reqs.len()];
                Payload::new(Signal::Traces, r.proto.clone(), r.items)
            })
            .collect();
        let items: u64 = payloads.iter().map(|p| p.items).sum();
        g.throughput(Throughput::Elements(items));
        g.bench_with_input(BenchmarkId::new("traces", parts), &payloads, |b, p| {
            b.iter(|| concat(Signal::Traces, black_box(p.clone())))
        });
    }
    g.finish();
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_to_protobuf");
    g.sample_size(20);
    for signal in Signal::ALL {
        let reqs = requests(signal, 100, true);
        let j = reqs[0].json.clone().unwrap();
        g.throughput(Throughput::Elements(reqs[0].items));
        g.bench_with_input(BenchmarkId::new(signal.as_str(), j.len()), &j, |b, j| {
            b.iter(|| json_to_protobuf(signal, black_box(j)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, wire, decode, batching, json);
criterion_main!(benches);
