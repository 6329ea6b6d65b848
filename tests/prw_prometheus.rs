//! End-to-end at the Sender level against a real Prometheus: OTLP requests are translated and
//! written by the `prometheusremotewrite` sender, then read back with PromQL (exact series,
//! labels, values, `target_info`, `histogram_quantile` over classic and native histograms,
//! stale markers, refused delta points).

mod prw_support;

use bytes::Bytes;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use prost::Message;
use prw_support::*;
use watchtower::exporter::prometheusremotewrite::{Config, build};
use watchtower::exporter::{SendOk, Sender};
use watchtower::pipeline::payload::{Payload, Signal};

fn number(attrs: Vec<(&str, &str)>, t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs.into_iter().map(|(k, v)| kv(k, v)).collect(),
        time_unix_nano: t,
        start_time_unix_nano: t - 60_000_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("{name} help"),
        data: Some(data),
        ..Default::default()
    }
}

fn sender(endpoint: &str, extra: &str) -> std::sync::Arc<dyn Sender> {
    let y = format!("endpoint: {endpoint}\nsend_metadata: true\n{extra}");
    let cfg: Config = serde_yaml::from_str(&y).expect("config");
    build(&cfg).expect("build")
}

fn payload(
    req: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) -> Payload {
    Payload::new(Signal::Metrics, Bytes::from(req.encode_to_vec()), 0)
}

const JOB_LABELS: [&str; 4] = [
    "instance=i-1",
    "job=qa/checkout",
    "otel_scope_name=shop.metrics",
    "otel_scope_version=1.0.0",
];

fn with_job(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = JOB_LABELS
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn otlp_metrics_land_in_real_prometheus() {
    let prom = Prometheus::start(0).await;
    let s = sender(&prom.write_url(), "");
    let t = now_ns() - 5_000_000_000;

    let bounds = vec![0.1, 0.5, 1.0, 5.0];
    let hist = HistogramDataPoint {
        attributes: vec![kv("http.route", "/pay")],
        time_unix_nano: t,
        count: 100,
        sum: Some(55.0),
        explicit_bounds: bounds,
        bucket_counts: vec![10, 40, 30, 15, 5],
        ..Default::default()
    };
    // scale 0: bucket i covers (2^i, 2^(i+1)]; 100 observations, 50 in (1,2], 50 in (2,4].
    let expo = ExponentialHistogramDataPoint {
        time_unix_nano: t,
        count: 104,
        sum: Some(250.0),
        scale: 0,
        zero_count: 4,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![50, 50],
        }),
        ..Default::default()
    };
    let summary = SummaryDataPoint {
        time_unix_nano: t,
        count: 10,
        sum: 20.0,
        quantile_values: vec![ValueAtQuantile {
            quantile: 0.9,
            value: 3.5,
        }],
        ..Default::default()
    };
    let req = request(vec![
        metric(
            "http.server.requests",
            "{request}",
            Data::Sum(Sum {
                data_points: vec![number(vec![("http.request.method", "GET")], t, 42.0)],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "queue.items",
            "{item}",
            Data::Sum(Sum {
                data_points: vec![number(vec![], t, -3.0)],
                aggregation_temporality: 2,
                is_monotonic: false,
            }),
        ),
        metric(
            "cpu.utilization",
            "1",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![("cpu", "0")], t, 0.25)],
            }),
        ),
        metric(
            "http.server.request.duration",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![hist],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "rpc.duration",
            "s",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![expo],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "gc.pause",
            "ms",
            Data::Summary(Summary {
                data_points: vec![summary],
            }),
        ),
        metric(
            "deltas",
            "",
            Data::Sum(Sum {
                data_points: vec![number(vec![], t, 1.0)],
                aggregation_temporality: 1,
                is_monotonic: true,
            }),
        ),
    ]);
    let ok = s.send(payload(&req)).await.expect("send");
    assert_eq!(
        ok,
        SendOk {
            dropped: vec![("delta_temporality".into(), 1)],
            message: None,
        }
    );

    let r = prom.query_until("http_server_requests_total", 1).await;
    assert_eq!(
        labels_of(&r[0]),
        with_job(&[
            "__name__=http_server_requests_total",
            "http_request_method=GET"
        ])
    );
    assert_eq!(sample_value(&r[0]), 42.0);

    let r = prom.query_until("queue_items", 1).await;
    assert_eq!(labels_of(&r[0]), with_job(&["__name__=queue_items"]));
    assert_eq!(sample_value(&r[0]), -3.0);

    let r = prom.query_until("cpu_utilization_ratio", 1).await;
    assert_eq!(
        labels_of(&r[0]),
        with_job(&["__name__=cpu_utilization_ratio", "cpu=0"])
    );
    assert_eq!(sample_value(&r[0]), 0.25);

    let r = prom.query_until("target_info", 1).await;
    assert_eq!(
        labels_of(&r[0]),
        [
            "__name__=target_info",
            "host_name=node-1",
            "instance=i-1",
            "job=qa/checkout"
        ]
    );
    assert_eq!(sample_value(&r[0]), 1.0);

    // Classic histogram: 6 bucket series, _sum, _count, and a quantile that answers.
    let r = prom
        .query_until("http_server_request_duration_seconds_bucket", 5)
        .await;
    assert_eq!(r.len(), 5);
    assert_eq!(
        prom.value("http_server_request_duration_seconds_bucket{le=\"0.5\"}")
            .await,
        50.0
    );
    assert_eq!(
        prom.value("http_server_request_duration_seconds_bucket{le=\"+Inf\"}")
            .await,
        100.0
    );
    assert_eq!(
        prom.value("http_server_request_duration_seconds_count")
            .await,
        100.0
    );
    assert_eq!(
        prom.value("http_server_request_duration_seconds_sum").await,
        55.0
    );
    // median: rank 50 is the upper edge of the (0.1, 0.5] bucket
    let q = prom
        .value("histogram_quantile(0.5, sum by (le) (http_server_request_duration_seconds_bucket))")
        .await;
    assert!((q - 0.5).abs() < 1e-9, "median {q}");

    // Native histogram from the exponential one.
    assert_eq!(
        prom.value("histogram_count(rpc_duration_seconds)").await,
        104.0
    );
    assert_eq!(
        prom.value("histogram_sum(rpc_duration_seconds)").await,
        250.0
    );
    let q = prom
        .value("histogram_quantile(0.5, rpc_duration_seconds)")
        .await;
    assert!(q > 1.0 && q <= 2.0, "native median {q}");
    let q = prom
        .value("histogram_quantile(0.9, rpc_duration_seconds)")
        .await;
    assert!(q > 2.0 && q <= 4.0, "native p90 {q}");

    // Summary.
    assert_eq!(
        prom.value("gc_pause_milliseconds{quantile=\"0.9\"}").await,
        3.5
    );
    assert_eq!(prom.value("gc_pause_milliseconds_count").await, 10.0);
    assert_eq!(prom.value("gc_pause_milliseconds_sum").await, 20.0);

    // The delta sum was not written in any form.
    assert!(prom.query("{__name__=~\"deltas.*\"}").await.is_empty());

    // Metadata arrived (Prometheus' metadata API serves what remote-write sent? 2.x does not
    // store remote-write metadata, so only check the write succeeded above).

    // A stale marker makes the gauge disappear from instant queries.
    let mut stale = number(vec![("cpu", "0")], t + 1_000_000_000, 0.0);
    stale.flags = 1;
    let req = request(vec![metric(
        "cpu.utilization",
        "1",
        Data::Gauge(Gauge {
            data_points: vec![stale],
        }),
    )]);
    s.send(payload(&req)).await.expect("send stale");
    assert!(prom.query("cpu_utilization_ratio").await.is_empty());
}
