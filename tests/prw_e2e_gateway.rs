//! End-to-end through the gateway: the Python OpenTelemetry SDK sends a counter, an
//! up-down counter, a gauge, a histogram and an exponential histogram over OTLP/HTTP to a
//! running `watchtower` whose `prometheusremotewrite` exporter writes into a real Prometheus;
//! the test reads everything back with PromQL (series names, job/instance/scope labels,
//! values, `target_info`, `histogram_quantile` on classic and native histograms).
//!
//! Needs: `prometheus` (Debian package), a Python with opentelemetry-sdk 1.38 and the OTLP
//! exporters (`WATCHTOWER_PYTHON`, else the repository's .venv/bin/python, else `python3`), the
//! gateway binary (`WATCHTOWER_BIN`, else the one Cargo built).

mod prw_support;

use prw_support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SDK_SCRIPT: &str = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    View, ExponentialBucketHistogramAggregation, ExplicitBucketHistogramAggregation)
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

exporter = OTLPMetricExporter(endpoint=sys.argv[1])
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
views = [
    View(instrument_name="rpc.duration",
         aggregation=ExponentialBucketHistogramAggregation(max_size=160, max_scale=20)),
    View(instrument_name="http.server.request.duration",
         aggregation=ExplicitBucketHistogramAggregation([0.1, 0.5, 1.0, 5.0])),
]
resource = Resource.create({
    "service.name": "checkout", "service.namespace": "qa",
    "service.instance.id": "i-1", "host.name": "node-1"})
provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
meter = provider.get_meter("shop.metrics", "1.0.0")

meter.create_counter("http.server.requests", unit="{request}").add(42, {"http.request.method": "GET"})
ud = meter.create_up_down_counter("queue.items", unit="{item}")
ud.add(5)
ud.add(-8)
meter.create_gauge("cpu.utilization", unit="1").set(0.25, {"cpu": "0"})
h = meter.create_histogram("http.server.request.duration", unit="s")
for v, n in [(0.05, 10), (0.3, 40), (0.7, 30), (2.0, 15), (7.0, 5)]:
    for _ in range(n):
        h.record(v, {"http.route": "/pay"})
# Narrow range: the SDK picks a scale above 8, the gateway must reduce it to schema 8.
e = meter.create_histogram("rpc.duration", unit="s")
for v, n in [(1.5, 50), (1.6, 50)]:
    for _ in range(n):
        e.record(v)

ok = provider.force_flush(10_000)
provider.shutdown()
sys.exit(0 if ok else 1)
"#;

fn python() -> String {
    if let Ok(p) = std::env::var("WATCHTOWER_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        venv.into()
    } else {
        "python3".into()
    }
}

fn gateway_bin() -> String {
    std::env::var("WATCHTOWER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchtower").into())
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn python_sdk_through_gateway_into_prometheus() {
    let prom = Prometheus::start(0).await;
    let (grpc, http, health, telemetry) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("watchtower.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:{grpc}" }}, http: {{ endpoint: "127.0.0.1:{http}" }} }} }} }}
exporters:
  prometheusremotewrite:
    endpoint: "{}"
    retry_on_failure: {{ initial_interval: 100ms }}
extensions: {{ health_check: {{ endpoint: "127.0.0.1:{health}" }} }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ address: "127.0.0.1:{telemetry}" }} }}
  pipelines: {{ metrics: {{ receivers: [otlp], exporters: [prometheusremotewrite] }} }}
"#,
            prom.write_url()
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log");
    let _gw = Gateway(
        Command::new(gateway_bin())
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start watchtower"),
    );
    let gw_log = || std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();

    // Ready when the health endpoint answers 200.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("http://127.0.0.1:{health}/");
        if let Ok(r) = client().get(&url).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gateway not healthy; log:\n{}",
            gw_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    run_sdk(dir.path(), http, &gw_log());
    assert_sdk_metrics_in(&prom).await;

    // The gateway counted what it sent.
    let m = client()
        .get(format!("http://127.0.0.1:{telemetry}/metrics"))
        .send()
        .await
        .expect("self-metrics");
    let text = m.text().await.expect("self-metrics body");
    assert!(
        text.contains("otelcol_exporter_sent_metric_points"),
        "self-metrics lack otelcol_exporter_sent_metric_points:\n{text}"
    );
}

/// Runs the SDK script against `http://127.0.0.1:{port}/v1/metrics`.
fn run_sdk(dir: &std::path::Path, port: u16, context: &str) {
    let script = dir.join("send_metrics.py");
    std::fs::write(&script, SDK_SCRIPT).expect("write script");
    let out = Command::new(python())
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/v1/metrics"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python SDK failed: {}\n{context}",
        String::from_utf8_lossy(&out.stderr),
    );
}

/// What the SDK script sent, read back from Prometheus.
async fn assert_sdk_metrics_in(prom: &Prometheus) {
    let job = [
        "instance=i-1",
        "job=qa/checkout",
        "otel_scope_name=shop.metrics",
        "otel_scope_version=1.0.0",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = job.iter().chain(extra).map(|s| s.to_string()).collect();
        v.sort();
        v
    };

    // Counter
    let r = prom.query_until("http_server_requests_total", 1).await;
    assert_eq!(
        labels_of(&r[0]),
        with(&[
            "__name__=http_server_requests_total",
            "http_request_method=GET"
        ])
    );
    assert_eq!(sample_value(&r[0]), 42.0);
    // Up-down counter -> gauge
    let r = prom.query_until("queue_items", 1).await;
    assert_eq!(labels_of(&r[0]), with(&["__name__=queue_items"]));
    assert_eq!(sample_value(&r[0]), -3.0);
    // Gauge with unit 1 -> _ratio
    let r = prom.query_until("cpu_utilization_ratio", 1).await;
    assert_eq!(
        labels_of(&r[0]),
        with(&["__name__=cpu_utilization_ratio", "cpu=0"])
    );
    assert_eq!(sample_value(&r[0]), 0.25);
    // Classic histogram
    let b = prom
        .query_until("http_server_request_duration_seconds_bucket", 5)
        .await;
    assert_eq!(b.len(), 5, "{b:?}");
    assert_eq!(
        prom.value("http_server_request_duration_seconds_bucket{le=\"0.5\"}")
            .await,
        50.0
    );
    assert_eq!(
        prom.value("http_server_request_duration_seconds_count")
            .await,
        100.0
    );
    let sum = prom.value("http_server_request_duration_seconds_sum").await;
    assert!((sum - 98.5).abs() < 1e-6, "sum {sum}");
    let q = prom
        .value("histogram_quantile(0.5, sum by (le) (http_server_request_duration_seconds_bucket))")
        .await;
    assert!((q - 0.5).abs() < 1e-9, "classic median {q}");
    // Exponential histogram -> native histogram
    assert_eq!(
        prom.value("histogram_count(rpc_duration_seconds)").await,
        100.0
    );
    let s = prom.value("histogram_sum(rpc_duration_seconds)").await;
    assert!((s - 155.0).abs() < 1e-6, "native sum {s}");
    let q = prom
        .value("histogram_quantile(0.25, rpc_duration_seconds)")
        .await;
    assert!((q - 1.5).abs() < 0.015, "native p25 {q}");
    let q = prom
        .value("histogram_quantile(0.9, rpc_duration_seconds)")
        .await;
    assert!((q - 1.6).abs() < 0.015, "native p90 {q}");
    // target_info with the non-identifying resource attributes (the SDK adds telemetry.sdk.*)
    let r = prom.query_until("target_info", 1).await;
    let l = labels_of(&r[0]);
    for want in [
        "host_name=node-1",
        "instance=i-1",
        "job=qa/checkout",
        "telemetry_sdk_language=python",
    ] {
        assert!(
            l.iter().any(|x| x == want),
            "target_info lacks {want}: {l:?}"
        );
    }
}

/// The same SDK data through a minimal in-test OTLP/HTTP receiver that hands the request
/// bytes straight to the remote-write sender: proves SDK -> translation -> Prometheus even
/// where the gateway binary is not built.
#[tokio::test]
async fn python_sdk_through_sender_into_prometheus() {
    use axum::{Router, body::Bytes as AxBytes, http::StatusCode, routing::post};
    use watchtower::exporter::prometheusremotewrite::{Config, build};
    use watchtower::pipeline::payload::{Payload, Signal};

    let prom = Prometheus::start(0).await;
    let cfg: Config =
        serde_yaml::from_str(&format!("endpoint: {}", prom.write_url())).expect("config");
    let sender = build(&cfg).expect("build");
    let app = Router::new().route(
        "/v1/metrics",
        post(move |body: AxBytes| {
            let sender = sender.clone();
            async move {
                match sender.send(Payload::new(Signal::Metrics, body, 0)).await {
                    Ok(_) => (StatusCode::OK, Vec::new()),
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string().into_bytes()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || run_sdk(&d, port, "in-test receiver"))
        .await
        .expect("sdk thread");
    assert_sdk_metrics_in(&prom).await;
}
