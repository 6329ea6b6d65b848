//! `deltatocumulative` end to end: the OpenTelemetry Python SDK, configured for delta
//! temporality, exports a counter and a histogram twice through the gateway, whose
//! `deltatocumulative` processor sits before `prometheusremotewrite` into a real Prometheus.
//! Prometheus must see counters and classic histograms whose increase between the exports,
//! totals and `histogram_quantile()` answer with exactly the values sent (without the
//! processor the exporter refuses delta points).

mod prw_support;
mod support;

use prw_support::Prometheus;
use support::gateway::Gateway;

const SDK_SCRIPT: &str = r#"
import sys, time
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=sys.argv[1]), export_interval_millis=3_600_000)
views = [View(instrument_name="d2c.latency", aggregation=ExplicitBucketHistogramAggregation([0.1, 0.5, 1.0, 5.0]))]
provider = MeterProvider(resource=Resource.create({"service.name": "d2c"}), metric_readers=[reader], views=views)
meter = provider.get_meter("d2c.test", "1.0")
c = meter.create_counter("d2c.requests", unit="{request}")
h = meter.create_histogram("d2c.latency", unit="s")
c.add(5, {"route": "/a"})
for _ in range(10):
    h.record(0.3)
provider.force_flush()
time.sleep(0.3)
c.add(7, {"route": "/a"})
for _ in range(10):
    h.record(2.0)
provider.shutdown()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_sdk_metrics_land_in_prometheus_as_counters_and_histograms() {
    let prom = Prometheus::start(0).await;
    let body = format!(
        "processors:\n  deltatocumulative: {{ max_stale: 5m }}\nexporters:\n  prometheusremotewrite:\n    endpoint: \"{}\"\n    retry_on_failure: {{ initial_interval: 100ms }}\n",
        prom.write_url()
    );
    let pipelines = "  pipelines:\n    metrics: { receivers: [otlp], processors: [deltatocumulative], exporters: [prometheusremotewrite] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("send.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    let endpoint = gw.http_url("/v1/metrics");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::python())
            .arg(&script)
            .arg(endpoint)
            .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "sdk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the counter: two samples, 5 then 12
    let series = "d2c_requests_total{route=\"/a\"}";
    let samples = format!("count_over_time({series}[1h])");
    for _ in 0..200 {
        if prom
            .query(&samples)
            .await
            .first()
            .map(prw_support::sample_value)
            == Some(2.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(prom.value(&samples).await, 2.0);
    assert_eq!(prom.value(series).await, 12.0);
    assert_eq!(
        prom.value(&format!("min_over_time({series}[1h])")).await,
        5.0
    );
    // the increase between the two exports is the second delta, with no counter reset
    assert_eq!(prom.value(&format!("idelta({series}[1h])")).await, 7.0);
    assert_eq!(prom.value(&format!("resets({series}[1h])")).await, 0.0);

    // the histogram: 10 x 0.3 then 10 x 2.0
    assert_eq!(prom.value("d2c_latency_seconds_count").await, 20.0);
    assert_eq!(prom.value("d2c_latency_seconds_sum").await, 23.0);
    assert_eq!(
        prom.value("histogram_quantile(0.5, sum by (le) (d2c_latency_seconds_bucket))")
            .await,
        0.5
    );
    assert_eq!(
        prom.value("histogram_quantile(0.75, sum by (le) (d2c_latency_seconds_bucket))")
            .await,
        3.0
    );
    assert_eq!(
        prom.value("d2c_latency_seconds_bucket{le=\"0.5\"}").await,
        10.0
    );

    // every point was converted and sent: nothing refused as delta
    assert_eq!(
        gw.metric("otelcol_deltatocumulative_streams_tracked", &[])
            .await,
        2.0
    );
    assert_eq!(
        gw.metric(
            "otelcol_exporter_sent_metric_points_total",
            &["exporter=\"prometheusremotewrite\""]
        )
        .await,
        4.0
    );
}

const CAP_SCRIPT: &str = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=sys.argv[1]), export_interval_millis=3_600_000)
provider = MeterProvider(resource=Resource.create({"service.name": "d2c"}), metric_readers=[reader])
c = provider.get_meter("d2c.test", "1.0").create_counter("d2c.capped", unit="{request}")
for route in ["/a", "/b", "/c"]:
    c.add(1, {"route": route})
provider.shutdown()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_cap_holds_through_the_gateway() {
    let prom = Prometheus::start(0).await;
    let body = format!(
        "processors:\n  deltatocumulative: {{ max_streams: 2 }}\nexporters:\n  prometheusremotewrite:\n    endpoint: \"{}\"\n",
        prom.write_url()
    );
    let pipelines = "  pipelines:\n    metrics: { receivers: [otlp], processors: [deltatocumulative], exporters: [prometheusremotewrite] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cap.py");
    std::fs::write(&script, CAP_SCRIPT).unwrap();
    let endpoint = gw.http_url("/v1/metrics");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::python())
            .arg(&script)
            .arg(endpoint)
            .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = prom.query_until("d2c_capped_total", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(prom.query("d2c_capped_total").await.len(), 2, "{got:?}");
    assert_eq!(
        gw.metric(
            "otelcol_deltatocumulative_datapoints_dropped_total",
            &["error=\"limit\""]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("otelcol_deltatocumulative_streams_tracked", &[])
            .await,
        2.0
    );
}
