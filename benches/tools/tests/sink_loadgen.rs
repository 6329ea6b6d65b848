//! `watchtower-bench loadgen` and `watchtower-bench sink` agree on exact counts: directly, and
//! through a gateway for each signal (gRPC, HTTP protobuf and HTTP JSON in; OTLP gRPC and OTLP
//! HTTP out). Everything binds 127.0.0.1:0 and runs in-process; a few thousand items per case.

use prost::Message;
use std::time::{Duration, Instant};
use watchtower::app::App;
use watchtower_bench::loadgen::{self, Protocol, SignalArg};
use watchtower_bench::sink::{self, Snapshot};

fn sink_args() -> sink::Args {
    sink::Args {
        grpc: Some("127.0.0.1:0".into()),
        http: Some("127.0.0.1:0".into()),
        prw: Some("127.0.0.1:0".into()),
        loki: Some("127.0.0.1:0".into()),
        stats: Some("127.0.0.1:0".into()),
        quiet: true,
        ..Default::default()
    }
}

fn lg(endpoint: String, protocol: Protocol, signal: SignalArg, requests: u64) -> loadgen::Args {
    loadgen::Args {
        endpoint,
        protocol,
        signal,
        requests,
        items_per_request: 50,
        connections: 3,
        duration: 30.0,
        pool: 8,
        quiet: true,
        ..Default::default()
    }
}

/// Waits until `f(snapshot)` reaches `want` (or 10 s pass) and returns the last value.
async fn wait_for(sink: &sink::Sink, want: u64, f: impl Fn(&Snapshot) -> u64) -> u64 {
    let t0 = Instant::now();
    loop {
        let v = f(&sink.snapshot());
        if v >= want || t0.elapsed() > Duration::from_secs(10) {
            // let anything extra (duplicates) arrive before judging
            tokio::time::sleep(Duration::from_millis(200)).await;
            return f(&sink.snapshot());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_and_sink_agree_directly() {
    let s = sink::start(&sink_args()).await.unwrap();
    let cases = [
        (
            format!("{}", s.grpc.unwrap()),
            Protocol::Grpc,
            SignalArg::Traces,
            40u64,
        ),
        (
            format!("http://{}", s.http.unwrap()),
            Protocol::Http,
            SignalArg::Metrics,
            30,
        ),
        (
            format!("http://{}", s.http.unwrap()),
            Protocol::HttpJson,
            SignalArg::Logs,
            20,
        ),
    ];
    for (ep, proto, sig, n) in cases {
        let r = loadgen::run(&lg(ep, proto, sig, n)).await.unwrap();
        assert_eq!(r.requests.accepted, n, "{proto:?} {sig:?}: {r:?}");
        assert_eq!(r.items.accepted, n * 50);
        assert_eq!(r.requests.failed + r.requests.refused, 0);
        assert!(r.latency_ms.count == n && r.latency_ms.p99 >= r.latency_ms.p50);
    }
    let snap = s.snapshot();
    assert_eq!(
        (snap.traces.items, snap.metrics.items, snap.logs.items),
        (2000, 1500, 1000)
    );
    assert_eq!(
        (
            snap.traces.requests,
            snap.metrics.requests,
            snap.logs.requests
        ),
        (40, 30, 20)
    );
    assert_eq!(snap.bad_requests, 0);
    // the stats endpoint serves the same numbers
    let body = http_get(s.stats.unwrap(), "/counts").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["traces"]["items"], 2000);
    assert_eq!(v["logs"]["requests"], 20);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_fails_the_given_fraction_and_loadgen_counts_it() {
    // 400 is not retryable: half the requests fail for good
    let s = sink::start(&sink::Args {
        fail_rate: 0.5,
        fail_status: 400,
        ..sink_args()
    })
    .await
    .unwrap();
    let r = loadgen::run(&lg(
        format!("http://{}", s.http.unwrap()),
        Protocol::Http,
        SignalArg::Traces,
        40,
    ))
    .await
    .unwrap();
    assert_eq!((r.requests.accepted, r.requests.failed), (20, 20), "{r:?}");
    let snap = s.snapshot();
    assert_eq!(
        (snap.traces.items, snap.failed_requests, snap.failed_items),
        (1000, 20, 1000)
    );
    s.stop().await;
    // 429 is a refusal: loadgen backs off, retries and finally delivers everything
    let s = sink::start(&sink::Args {
        fail_rate: 0.25,
        fail_status: 429,
        ..sink_args()
    })
    .await
    .unwrap();
    let r = loadgen::run(&lg(
        s.grpc.unwrap().to_string(),
        Protocol::Grpc,
        SignalArg::Logs,
        20,
    ))
    .await
    .unwrap();
    assert_eq!(r.requests.accepted, 20, "{r:?}");
    assert!(r.requests.refused >= 5, "{r:?}");
    assert_eq!(s.snapshot().logs.items, 1000);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_decodes_remote_write_and_loki_push() {
    use watchtower::proto::{logproto, prometheus};
    let s = sink::start(&sink_args()).await.unwrap();
    let ts = |n: usize, h: usize| prometheus::TimeSeries {
        labels: vec![prometheus::Label {
            name: "__name__".into(),
            value: "up".into(),
        }],
        samples: (0..n)
            .map(|k| prometheus::Sample {
                value: 1.0,
                timestamp: k as i64,
            })
            .collect(),
        histograms: (0..h).map(|_| prometheus::Histogram::default()).collect(),
        ..Default::default()
    };
    let wr = prometheus::WriteRequest {
        timeseries: vec![ts(3, 0), ts(2, 1), ts(0, 2)],
        ..Default::default()
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&wr.encode_to_vec())
        .unwrap();
    assert_eq!(http_post(s.prw.unwrap(), "/api/v1/write", body).await, 204);
    let push = logproto::PushRequest {
        streams: (0..3)
            .map(|k| logproto::StreamAdapter {
                labels: format!("{{job=\"j{k}\"}}"),
                entries: (0..k + 1)
                    .map(|_| logproto::EntryAdapter {
                        line: "hello".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&push.encode_to_vec())
        .unwrap();
    assert_eq!(
        http_post(s.loki.unwrap(), "/loki/api/v1/push", body).await,
        204
    );
    // garbage is refused and counted, not counted as data
    assert_eq!(
        http_post(s.prw.unwrap(), "/api/v1/write", b"junk".to_vec()).await,
        400
    );
    let snap = s.snapshot();
    assert_eq!(
        (
            snap.prw.samples,
            snap.prw.histograms,
            snap.prw.items,
            snap.prw.series
        ),
        (Some(5), Some(3), 8, Some(3))
    );
    assert_eq!((snap.loki.items, snap.loki.streams), (6, Some(3)));
    assert_eq!(snap.bad_requests, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_through_the_gateway_for_each_signal() {
    let s = sink::start(&sink_args()).await.unwrap();
    let cfg = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
      http: {{ endpoint: "127.0.0.1:0" }}
processors:
  batch: {{ timeout: 50ms, send_batch_size: 1000 }}
exporters:
  otlp/sink: {{ endpoint: "{grpc}", tls: {{ insecure: true }}, compression: none }}
  otlphttp/sink: {{ endpoint: "http://{http}", compression: gzip }}
service:
  telemetry: {{ metrics: {{ address: "127.0.0.1:0" }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/sink] }}
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [otlphttp/sink] }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [otlp/sink] }}
"#,
        grpc = s.grpc.unwrap(),
        http = s.http.unwrap()
    );
    let cfg = watchtower::config::parse(&cfg, &|_| None).unwrap();
    let app = App::start(cfg).await.unwrap();
    let g = app.bound.grpc.values().next().copied().unwrap();
    let h = app.bound.http.values().next().copied().unwrap();
    let cases = [
        (g.to_string(), Protocol::Grpc, SignalArg::Traces, 60u64),
        (
            format!("http://{h}"),
            Protocol::Http,
            SignalArg::Metrics,
            40,
        ),
        (
            format!("http://{h}"),
            Protocol::HttpJson,
            SignalArg::Logs,
            30,
        ),
    ];
    for (ep, proto, sig, n) in cases.clone() {
        let r = loadgen::run(&lg(ep, proto, sig, n)).await.unwrap();
        assert_eq!(r.items.accepted, n * 50, "{proto:?} {sig:?}: {r:?}");
        assert_eq!(r.requests.failed, 0, "{r:?}");
    }
    let traces = wait_for(&s, 3000, |c| c.traces.items).await;
    let metrics = wait_for(&s, 2000, |c| c.metrics.items).await;
    let logs = wait_for(&s, 1500, |c| c.logs.items).await;
    assert_eq!((traces, metrics, logs), (3000, 2000, 1500));
    let snap = s.snapshot();
    assert_eq!(snap.bad_requests + snap.failed_requests, 0);
    // batching concatenated requests: fewer, larger requests arrive than were sent
    assert!(snap.traces.requests <= 60, "{snap:?}");
    // gzip on the otlphttp exporter: fewer bytes on the wire than decoded
    assert!(snap.metrics.wire_bytes < snap.metrics.bytes, "{snap:?}");
    let report = app.shutdown().await;
    assert!(report.undelivered.is_empty(), "{report:?}");
    s.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    http_request(addr, "GET", path, Vec::new()).await.1
}

async fn http_post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> u16 {
    http_request(addr, "POST", path, body).await.0
}

/// A minimal HTTP/1.1 client (one request per connection).
async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&body).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}
