//! `durable_passthrough` measurement (docs/durable.md "Benchmark"): the same OTLP/HTTP passthrough
//! load through an in-process gateway with a memory queue and with a durable queue
//! (`fsync: group`), then the durable one paced at half the memory rate for its p99.
//! Everything runs in one process on loopback (gateway, sink, load), so absolute figures are
//! lower than the `make bench` rig's; the ratio is the figure of interest.
//!
//! `cargo run --release --example durable_passthrough [seconds] [connections]`
//! Writes the queue under target/durable-bench (a real disk: fsync on tmpfs is free).

use axum::body::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use watchtower::pipeline::payload::Signal;

fn request(first: u64, n: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (first..first + n)
                    .map(|i| Span {
                        trace_id: [i.to_be_bytes(), i.to_be_bytes()].concat(),
                        span_id: i.to_be_bytes().to_vec(),
                        name: format!("GET /api/v1/items/{}", i % 50),
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i,
                        end_time_unix_nano: 1_700_000_000_000_100_000 + i,
                        attributes: (0..8)
                            .map(|a| kv(&format!("attr.{a}"), &format!("value-{}", i % 97)))
                            .collect(),
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

async fn sink() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let items = Arc::new(AtomicU64::new(0));
    let i2 = items.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let items = i2.clone();
            async move {
                if let Ok(n) = watchtower::pipeline::wire::validate_and_count(Signal::Traces, &body)
                {
                    items.fetch_add(n, Ordering::Relaxed);
                }
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, items)
}

struct Run {
    items_per_s: f64,
    p50: Duration,
    p99: Duration,
    p90: Duration,
    p999: Duration,
    refused: u64,
}

/// Closed loop (`rate` = None) or paced at `rate` requests/s overall.
async fn drive(
    url: &str,
    conns: usize,
    secs: f64,
    rate: Option<f64>,
    pool: Arc<Vec<Vec<u8>>>,
) -> Run {
    watchtower::install_crypto_provider();
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let ok_items = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let (url, stop, lat, ok_items, refused, pool) = (
                url.to_string(),
                stop.clone(),
                lat.clone(),
                ok_items.clone(),
                refused.clone(),
                pool.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let per_conn = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
                let mut next = Instant::now();
                let mut k = c;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(p) = per_conn {
                        let now = Instant::now();
                        if next > now {
                            tokio::time::sleep(next - now).await;
                        }
                        next += p;
                    }
                    let body = pool[k % pool.len()].clone();
                    k += conns;
                    let t = Instant::now();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            ok_items.fetch_add(200, Ordering::Relaxed);
                            lat.lock().push(t.elapsed());
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let el = t0.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *lat.lock());
    l.sort();
    let q = |f: f64| {
        l.get(((l.len() as f64 * f) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        items_per_s: ok_items.load(Ordering::Relaxed) as f64 / el,
        p50: q(0.5),
        p99: q(0.99),
        p90: q(0.9),
        p999: q(0.999),
        refused: refused.load(Ordering::Relaxed),
    }
}

async fn gateway(durable: bool, sink: std::net::SocketAddr, dir: &str) -> watchtower::app::App {
    let queue = if durable {
        "sending_queue: { storage: file_storage, max_bytes: 1GiB }"
    } else {
        "sending_queue: { max_bytes: 256MiB }"
    };
    // extra file_storage keys for experiments, e.g. DURABLE_EXTRA=", segment_size: 256MiB"
    let extra = std::env::var("DURABLE_EXTRA").unwrap_or_default();
    let yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: \"127.0.0.1:0\" }}\nexporters:\n  otlphttp/sink:\n    endpoint: \"http://{sink}\"\n    compression: none\n    {queue}\nextensions:\n  file_storage: {{ directory: \"{dir}\", fsync: group{extra} }}\nservice:\n  extensions: [file_storage]\n  telemetry: {{ metrics: {{ address: \"\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [otlphttp/sink] }}\n"
    );
    let cfg = watchtower::config::parse(&yaml, &|_| None).expect("config");
    watchtower::app::App::start(cfg).await.expect("start")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/durable-bench");
        let _ = std::fs::remove_dir_all(&dir);
        let dir = dir.display().to_string();
        let pool = Arc::new((0..32u64).map(|i| request(i * 200, 200)).collect::<Vec<_>>());
        let (addr, delivered) = sink().await;
        let mut rows = Vec::new();
        for durable in [false, true] {
            let app = gateway(durable, addr, &dir).await;
            let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
            let _ = drive(&url, conns, 1.0, None, pool.clone()).await; // warm-up
            let r = drive(&url, conns, secs, None, pool.clone()).await;
            if durable {
                let m = app.metrics.encode();
                let get = |k: &str| {
                    m.lines()
                        .find(|l| l.starts_with(k))
                        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let n = get("watchtower_durable_queue_fsync_duration_seconds_count");
                let sum = get("watchtower_durable_queue_fsync_duration_seconds_sum");
                let reqs = r.items_per_s * secs / 200.0;
                println!(
                    "fsyncs: {n:.0}, mean {:.2} ms, ~{:.1} requests per fsync",
                    sum / n.max(1.0) * 1e3,
                    reqs / n.max(1.0)
                );
                let started = |source: &str| {
                    app.metrics
                        .queue.durable_segments_started("otlphttp/sink", source)
                };
                println!(
                    "segments started: {} recycled, {} zeroed, {} fresh",
                    started("recycled"),
                    started("zeroed"),
                    started("fresh")
                );
            }
            app.shutdown().await;
            rows.push((durable, r));
        }
        let mem_rate = rows[0].1.items_per_s;
        let app = gateway(true, addr, &dir).await;
        let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
        let half = drive(&url, conns, secs, Some(mem_rate / 2.0 / 200.0), pool.clone()).await;
        app.shutdown().await;
        for (durable, r) in &rows {
            println!(
                "{:<22} {:>10.0} spans/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  refused {}",
                if *durable { "durable_passthrough" } else { "passthrough (memory)" },
                r.items_per_s,
                r.p50.as_secs_f64() * 1e3,
                r.p90.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.p999.as_secs_f64() * 1e3,
                r.refused
            );
        }
        println!(
            "durable/memory rate ratio: {:.2}",
            rows[1].1.items_per_s / mem_rate.max(1.0)
        );
        println!(
            "durable at half the memory rate ({:.0} spans/s): achieved {:.0} spans/s, p50 {:.2} ms, p99 {:.2} ms",
            mem_rate / 2.0,
            half.items_per_s,
            half.p50.as_secs_f64() * 1e3,
            half.p99.as_secs_f64() * 1e3
        );
        println!("sink received {} spans in total", delivered.load(Ordering::Relaxed));
    });
}
