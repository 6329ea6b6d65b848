//! Golden translation tests: every translation rule and edge case of
//! docs/prometheusremotewrite.md ("Translation", "What is refused"), written as the
//! exposition-style lines the translation must produce (`name{labels} value @ms`).

use super::*;
use crate::pipeline::payload::Signal;
use crate::proto::prometheus::{WriteRequest, histogram as ph};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const T: u64 = 1_700_000_000_123_456_789;
const T_MS: i64 = 1_700_000_000_123;
const CUM: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn kv(k: &str, v: &str) -> KeyValue {
    kv_any(k, Value::StringValue(v.into()))
}

fn kv_any(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn svc() -> Vec<KeyValue> {
    vec![kv("service.name", "svc"), kv("service.instance.id", "i-1")]
}

fn request(
    resource: Vec<KeyValue>,
    scope: (&str, &str),
    metrics: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: scope.0.into(),
                    version: scope.1.into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("help for {name}"),
        data: Some(data),
        ..Default::default()
    }
}

fn ndp(attrs: Vec<KeyValue>, t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        start_time_unix_nano: t.saturating_sub(10_000_000_000),
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, pts: Vec<NumberDataPoint>) -> Metric {
    metric(name, unit, Data::Gauge(Gauge { data_points: pts }))
}

fn sum(name: &str, unit: &str, mono: bool, temp: i32, pts: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Sum(Sum {
            data_points: pts,
            aggregation_temporality: temp,
            is_monotonic: mono,
        }),
    )
}

fn hdp(
    attrs: Vec<KeyValue>,
    count: u64,
    s: Option<f64>,
    bounds: &[f64],
    counts: &[u64],
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: attrs,
        time_unix_nano: T,
        count,
        sum: s,
        explicit_bounds: bounds.to_vec(),
        bucket_counts: counts.to_vec(),
        ..Default::default()
    }
}

fn hist(name: &str, unit: &str, temp: i32, pts: Vec<HistogramDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Histogram(Histogram {
            data_points: pts,
            aggregation_temporality: temp,
        }),
    )
}

fn edp(
    scale: i32,
    zero: u64,
    pos: (i32, &[u64]),
    neg: (i32, &[u64]),
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: zero + pos.1.iter().sum::<u64>() + neg.1.iter().sum::<u64>(),
        sum: Some(12.5),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset: pos.0,
            bucket_counts: pos.1.to_vec(),
        }),
        negative: Some(Buckets {
            offset: neg.0,
            bucket_counts: neg.1.to_vec(),
        }),
        ..Default::default()
    }
}

fn expo(name: &str, temp: i32, pts: Vec<ExponentialHistogramDataPoint>) -> Metric {
    metric(
        name,
        "s",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: pts,
            aggregation_temporality: temp,
        }),
    )
}

fn run(req: &ExportMetricsServiceRequest) -> Translation {
    translate(req, &Settings::default())
}

/// Checks the invariants every series must hold (sorted unique names, no empty value,
/// `__name__` present) and renders the float samples as `name{k="v",...} value @ms`, sorted.
fn render(t: &Translation) -> Vec<String> {
    let mut out = Vec::new();
    for ts in &t.series {
        assert!(
            ts.labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted/unique: {:?}",
            ts.labels
        );
        assert!(
            ts.labels
                .iter()
                .all(|l| !l.value.is_empty() && !l.name.is_empty())
        );
        let name = ts
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.clone())
            .expect("__name__");
        let rest: Vec<String> = ts
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        for s in &ts.samples {
            let v = if s.value.to_bits() == STALE_NAN_BITS {
                "STALE".to_string()
            } else {
                naming::format_float(s.value)
            };
            out.push(format!("{name}{{{}}} {v} @{}", rest.join(","), s.timestamp));
        }
    }
    out.sort();
    out
}

fn names(t: &Translation) -> Vec<String> {
    let mut v: Vec<String> = t
        .series
        .iter()
        .filter_map(|ts| {
            ts.labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.clone())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn name_of(name: &str, unit: &str, kind: NameKind) -> String {
    naming::metric_name(name, unit, kind, "", true).unwrap()
}

// ---------- metric names ----------

#[test]
fn histogram_unit_seconds_gets_seconds_suffix() {
    let r = request(
        svc(),
        ("", ""),
        vec![hist(
            "http.server.duration",
            "s",
            CUM,
            vec![hdp(vec![], 1, Some(0.5), &[1.0], &[1, 0])],
        )],
    );
    assert_eq!(
        names(&run(&r)),
        [
            "http_server_duration_seconds_bucket",
            "http_server_duration_seconds_count",
            "http_server_duration_seconds_sum"
        ]
    );
}

#[test]
fn semconv_request_duration_seconds() {
    assert_eq!(
        name_of("http.server.request.duration", "s", NameKind::Other),
        "http_server_request_duration_seconds"
    );
    assert_eq!(
        name_of("http.request.duration", "ms", NameKind::Other),
        "http_request_duration_milliseconds"
    );
}

#[test]
fn unit_one_ratio_only_for_gauges() {
    assert_eq!(
        name_of("http.requests", "1", NameKind::Counter),
        "http_requests_total"
    );
    assert_eq!(
        name_of("cpu.utilization", "1", NameKind::Gauge),
        "cpu_utilization_ratio"
    );
    assert_eq!(
        name_of("cpu_usage_ratio", "1", NameKind::Gauge),
        "cpu_usage_ratio"
    );
    assert_eq!(
        name_of("ratio.of.cpu", "1", NameKind::Gauge),
        "of_cpu_ratio"
    );
}

#[test]
fn total_moved_to_the_end_and_no_doubled_unit() {
    assert_eq!(
        name_of("total_requests", "", NameKind::Counter),
        "requests_total"
    );
    assert_eq!(
        name_of("process.cpu.seconds", "s", NameKind::Counter),
        "process_cpu_seconds_total"
    );
    assert_eq!(
        name_of("memory.bytes", "By", NameKind::Gauge),
        "memory_bytes"
    );
    assert_eq!(name_of("x_total", "", NameKind::Gauge), "x_total");
}

#[test]
fn unit_annotations_and_per_units() {
    assert_eq!(name_of("packets", "{packets}", NameKind::Gauge), "packets");
    assert_eq!(
        name_of("rate", "{req}/s", NameKind::Gauge),
        "rate_per_second"
    );
    assert_eq!(
        name_of("net.io", " By / s ", NameKind::Gauge),
        "net_io_bytes_per_second"
    );
    assert_eq!(name_of("x", "KiBy", NameKind::Gauge), "x_kibibytes");
    assert_eq!(name_of("temp", "Cel", NameKind::Gauge), "temp_celsius");
    assert_eq!(name_of("load", "%", NameKind::Gauge), "load_percent");
    assert_eq!(name_of("odd", "foo.bar", NameKind::Gauge), "odd_foo_bar");
    assert_eq!(naming::unit_name("By/s"), "bytes_per_second");
    assert_eq!(naming::unit_name("1"), "");
    assert_eq!(naming::unit_name("{req}"), "");
}

#[test]
fn leading_digit_and_invalid_metric_names() {
    assert_eq!(name_of("2xx.count", "", NameKind::Gauge), "_2xx_count");
    assert!(naming::metric_name("@#$%", "", NameKind::Gauge, "", true).is_err());
    assert!(naming::metric_name("", "", NameKind::Gauge, "", true).is_err());
    // Through translate: the points are counted, nothing is written.
    let r = request(
        svc(),
        ("", ""),
        vec![gauge(
            "@#$%",
            "",
            vec![ndp(vec![], T, 1.0), ndp(vec![], T, 2.0)],
        )],
    );
    let t = run(&r);
    assert!(t.series.is_empty());
    assert_eq!(t.dropped, vec![(DropReason::InvalidMetricName, 2)]);
}

#[test]
fn namespace_prefixes_metrics_and_target_info() {
    let mut s = Settings::new("qa.team", &Default::default()).unwrap();
    s.target_info = true;
    let mut res = svc();
    res.push(kv("host.name", "h1"));
    let r = request(
        res,
        ("", ""),
        vec![sum("requests", "", true, CUM, vec![ndp(vec![], T, 3.0)])],
    );
    let t = translate(&r, &s);
    assert_eq!(names(&t), ["qa_team_requests_total", "qa_team_target_info"]);
}

#[test]
fn add_metric_suffixes_false() {
    let s = Settings {
        add_metric_suffixes: false,
        target_info: false,
        ..Settings::default()
    };
    let r = request(
        svc(),
        ("", ""),
        vec![
            sum("http.requests", "1", true, CUM, vec![ndp(vec![], T, 3.0)]),
            gauge("cpu.utilization", "1", vec![ndp(vec![], T, 0.5)]),
            hist(
                "http.server.duration",
                "s",
                CUM,
                vec![hdp(vec![], 0, None, &[], &[])],
            ),
            gauge("keep__double", "", vec![ndp(vec![], T, 0.5)]),
        ],
    );
    assert_eq!(
        names(&translate(&r, &s)),
        [
            "cpu_utilization",
            "http_requests",
            "http_server_duration_bucket",
            "http_server_duration_count",
            "keep__double"
        ]
    );
}

// ---------- labels ----------

#[test]
fn colliding_attribute_names_join_values() {
    let r = request(
        svc(),
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![kv("foo_bar", "b"), kv("foo.bar", "a")], T, 1.0)],
        )],
    );
    assert_eq!(
        render(&run(&r))[0],
        format!("g{{foo_bar=\"a;b\",instance=\"i-1\",job=\"svc\"}} 1 @{T_MS}")
    );
}

#[test]
fn label_name_sanitizing_prometheus_defaults() {
    assert_eq!(naming::label_name("_private").unwrap(), "key_private");
    assert_eq!(naming::label_name("123x").unwrap(), "key_123x");
    assert_eq!(naming::label_name("a..b").unwrap(), "a__b");
    assert_eq!(naming::label_name("__reserved__").unwrap(), "__reserved__");
    assert_eq!(naming::label_name("http.method").unwrap(), "http_method");
    assert_eq!(naming::label_name("dé").unwrap(), "d_");
    assert!(naming::label_name("...").is_err());
    assert!(naming::label_name("").is_err());
}

#[test]
fn job_and_instance_overwrite_point_attributes() {
    let res = vec![
        kv("service.name", "svc"),
        kv("service.namespace", "ns"),
        kv("service.instance.id", "pod-7"),
    ];
    let r = request(
        res,
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![kv("job", "x"), kv("instance", "y")], T, 1.0)],
        )],
    );
    assert_eq!(
        render(&run(&r)),
        [format!("g{{instance=\"pod-7\",job=\"ns/svc\"}} 1 @{T_MS}")]
    );
}

#[test]
fn no_job_without_service_name() {
    for res in [
        vec![kv("service.namespace", "ns")],
        vec![kv("service.name", ""), kv("service.namespace", "ns")],
        vec![],
    ] {
        let r = request(
            res,
            ("", ""),
            vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
        );
        assert_eq!(render(&run(&r)), [format!("g{{}} 1 @{T_MS}")]);
    }
    // service.name alone -> job without namespace
    let r = request(
        vec![kv("service.name", "a"), kv("service.namespace", "")],
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    assert_eq!(render(&run(&r)), [format!("g{{job=\"a\"}} 1 @{T_MS}")]);
}

#[test]
fn target_info_carries_other_resource_attributes() {
    let mut res = svc();
    res.push(kv("service.namespace", "ns"));
    res.push(kv("host.name", "h1"));
    res.push(kv("k8s.pod.name", "p"));
    let r = request(
        res,
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![
                ndp(vec![], T, 1.0),
                ndp(vec![kv("a", "b")], T + 5_000_000_000, 2.0),
            ],
        )],
    );
    let out = render(&run(&r));
    assert_eq!(
        out[2],
        format!(
            "target_info{{host_name=\"h1\",instance=\"i-1\",job=\"ns/svc\",k8s_pod_name=\"p\"}} 1 @{}",
            T_MS + 5000
        )
    );
}

#[test]
fn no_target_info_with_only_service_attributes_or_when_disabled() {
    let r = request(
        svc(),
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    assert_eq!(names(&run(&r)), ["g"]);
    let mut res = svc();
    res.push(kv("host.name", "h1"));
    let r = request(
        res,
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    let s = Settings {
        target_info: false,
        ..Settings::default()
    };
    assert_eq!(names(&translate(&r, &s)), ["g"]);
    // Neither job nor instance: no target_info either.
    let r = request(
        vec![kv("host.name", "h1")],
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    assert_eq!(names(&run(&r)), ["g"]);
}

#[test]
fn scope_labels_and_empty_scope() {
    let r = request(
        svc(),
        ("io.opentelemetry.http", "1.2.0"),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![kv("otel_scope_name", "fake")], T, 1.0)],
        )],
    );
    assert_eq!(
        render(&run(&r)),
        [format!(
            "g{{instance=\"i-1\",job=\"svc\",otel_scope_name=\"io.opentelemetry.http\",otel_scope_version=\"1.2.0\"}} 1 @{T_MS}"
        )]
    );
    let r = request(
        svc(),
        ("", "1.0"),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    assert_eq!(
        render(&run(&r)),
        [format!("g{{instance=\"i-1\",job=\"svc\"}} 1 @{T_MS}")]
    );
    let r = request(
        svc(),
        ("lib", ""),
        vec![gauge("g", "", vec![ndp(vec![], T, 1.0)])],
    );
    assert_eq!(
        render(&run(&r)),
        [format!(
            "g{{instance=\"i-1\",job=\"svc\",otel_scope_name=\"lib\"}} 1 @{T_MS}"
        )]
    );
}

#[test]
fn external_labels_fill_only_absent_names() {
    let ext = [
        ("cluster".to_string(), "c1".to_string()),
        ("region".to_string(), "eu".to_string()),
    ]
    .into_iter()
    .collect();
    let s = Settings::new("", &ext).unwrap();
    let r = request(
        svc(),
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![kv("region", "us")], T, 1.0)])],
    );
    assert_eq!(
        render(&translate(&r, &s)),
        [format!(
            "g{{cluster=\"c1\",instance=\"i-1\",job=\"svc\",region=\"us\"}} 1 @{T_MS}"
        )]
    );
    let bad = [("1bad".to_string(), "x".to_string())]
        .into_iter()
        .collect();
    assert!(Settings::new("", &bad).is_err());
    let empty = [("ok".to_string(), String::new())].into_iter().collect();
    assert!(Settings::new("", &empty).is_err());
}

#[test]
fn resource_to_telemetry_conversion_copies_resource_attributes() {
    let s = Settings {
        resource_to_telemetry: true,
        target_info: false,
        ..Settings::default()
    };
    let mut res = svc();
    res.push(kv("host.name", "h1"));
    res.push(kv("env", "prod"));
    let r = request(
        res,
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![kv("env", "point-wins")], T, 1.0)],
        )],
    );
    assert_eq!(
        render(&translate(&r, &s)),
        [format!(
            "g{{env=\"point-wins\",host_name=\"h1\",instance=\"i-1\",job=\"svc\",service_instance_id=\"i-1\",service_name=\"svc\"}} 1 @{T_MS}"
        )]
    );
}

#[test]
fn attribute_values_of_every_type_and_empty_strings() {
    let attrs = vec![
        kv_any("i", Value::IntValue(-42)),
        kv_any("b", Value::BoolValue(true)),
        kv_any("d", Value::DoubleValue(0.25)),
        kv_any(
            "arr",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::StringValue("x".into())),
                    },
                    AnyValue {
                        value: Some(Value::IntValue(1)),
                    },
                ],
            }),
        ),
        kv_any("bytes", Value::BytesValue(vec![1, 2, 3])),
        kv("empty", ""),
        kv("", "no-key"),
        kv("__name__", "evil"),
    ];
    let r = request(
        vec![],
        ("", ""),
        vec![gauge("g", "", vec![ndp(attrs, T, 1.0)])],
    );
    assert_eq!(
        render(&run(&r)),
        [format!(
            "g{{arr=\"[\"x\",1]\",b=\"true\",bytes=\"AQID\",d=\"0.25\",i=\"-42\"}} 1 @{T_MS}"
        )]
    );
}

#[test]
fn very_many_attributes() {
    let attrs: Vec<KeyValue> = (0..300)
        .map(|i| kv(&format!("attr.{i:03}"), &format!("v{i}")))
        .collect();
    let r = request(
        svc(),
        ("", ""),
        vec![gauge("g", "", vec![ndp(attrs, T, 1.0)])],
    );
    let t = run(&r);
    assert_eq!(t.series.len(), 1);
    assert_eq!(t.series[0].labels.len(), 300 + 3);
    render(&t);
}

// ---------- types ----------

#[test]
fn gauges_ints_and_non_monotonic_sums() {
    let mut p = ndp(vec![], T, 0.0);
    p.value = Some(number_data_point::Value::AsInt(-7));
    let r = request(
        vec![],
        ("", ""),
        vec![
            gauge("queue.depth", "", vec![p.clone()]),
            sum("active.requests", "{request}", false, CUM, vec![p]),
            sum("requests", "", true, CUM, vec![ndp(vec![], T, 10.0)]),
        ],
    );
    assert_eq!(
        render(&run(&r)),
        [
            format!("active_requests{{}} -7 @{T_MS}"),
            format!("queue_depth{{}} -7 @{T_MS}"),
            format!("requests_total{{}} 10 @{T_MS}"),
        ]
    );
}

#[test]
fn delta_temporality_is_refused_and_counted() {
    let r = request(
        svc(),
        ("", ""),
        vec![
            sum(
                "c",
                "",
                true,
                DELTA,
                vec![ndp(vec![], T, 1.0), ndp(vec![], T, 2.0)],
            ),
            sum("u", "", false, DELTA, vec![ndp(vec![], T, 1.0)]),
            hist("h", "", DELTA, vec![hdp(vec![], 1, None, &[], &[1])]),
            expo("e", DELTA, vec![edp(0, 0, (0, &[1]), (0, &[]))]),
            sum("x", "", true, 0, vec![ndp(vec![], T, 1.0)]),
            gauge("ok", "", vec![ndp(vec![], T, 1.0)]),
        ],
    );
    let t = run(&r);
    assert_eq!(names(&t), ["ok"]);
    assert_eq!(
        t.dropped,
        vec![
            (DropReason::DeltaTemporality, 5),
            (DropReason::UnspecifiedTemporality, 1)
        ]
    );
    assert_eq!(t.points, 1);
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_bucket() {
    let r = request(
        svc(),
        ("", ""),
        vec![hist(
            "lat",
            "s",
            CUM,
            vec![hdp(
                vec![kv("route", "/a")],
                10,
                Some(4.5),
                &[0.005, 1.0, 2.5],
                &[1, 2, 3, 4],
            )],
        )],
    );
    let l = "instance=\"i-1\",job=\"svc\"";
    assert_eq!(
        render(&run(&r)),
        [
            format!("lat_seconds_bucket{{{l},le=\"+Inf\",route=\"/a\"}} 10 @{T_MS}"),
            format!("lat_seconds_bucket{{{l},le=\"0.005\",route=\"/a\"}} 1 @{T_MS}"),
            format!("lat_seconds_bucket{{{l},le=\"1\",route=\"/a\"}} 3 @{T_MS}"),
            format!("lat_seconds_bucket{{{l},le=\"2.5\",route=\"/a\"}} 6 @{T_MS}"),
            format!("lat_seconds_count{{{l},route=\"/a\"}} 10 @{T_MS}"),
            format!("lat_seconds_sum{{{l},route=\"/a\"}} 4.5 @{T_MS}"),
        ]
    );
}

#[test]
fn histogram_without_bounds_or_sum() {
    let r = request(
        vec![],
        ("", ""),
        vec![hist("h", "", CUM, vec![hdp(vec![], 5, None, &[], &[5])])],
    );
    assert_eq!(
        render(&run(&r)),
        [
            format!("h_bucket{{le=\"+Inf\"}} 5 @{T_MS}"),
            format!("h_count{{}} 5 @{T_MS}")
        ]
    );
    // More bounds than counts: only min(len) buckets.
    let r = request(
        vec![],
        ("", ""),
        vec![hist(
            "h",
            "",
            CUM,
            vec![hdp(vec![], 3, None, &[1.0, 2.0, 3.0], &[3])],
        )],
    );
    assert_eq!(
        render(&run(&r)),
        [
            format!("h_bucket{{le=\"+Inf\"}} 3 @{T_MS}"),
            format!("h_bucket{{le=\"1\"}} 3 @{T_MS}"),
            format!("h_count{{}} 3 @{T_MS}")
        ]
    );
}

#[test]
fn no_recorded_value_flag_writes_stale_markers_everywhere() {
    let mut h = hdp(vec![], 3, Some(1.0), &[1.0], &[1, 2]);
    h.flags = 1;
    let mut g = ndp(vec![], T, 5.0);
    g.flags = 1;
    let mut e = edp(0, 1, (0, &[1]), (0, &[]));
    e.flags = 1;
    let r = request(
        vec![],
        ("", ""),
        vec![
            hist("h", "", CUM, vec![h]),
            gauge("g", "", vec![g]),
            expo("e", CUM, vec![e]),
        ],
    );
    let t = run(&r);
    let out = render(&t);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|l| l.contains(" STALE @")), "{out:?}");
    let nh = t.series.iter().find(|s| !s.histograms.is_empty()).unwrap();
    assert_eq!(nh.histograms[0].sum.to_bits(), STALE_NAN_BITS);
}

#[test]
fn nan_and_inf_pass_through_as_ordinary_values() {
    let r = request(
        vec![],
        ("", ""),
        vec![
            gauge("n", "", vec![ndp(vec![], T, f64::NAN)]),
            gauge("p", "", vec![ndp(vec![], T, f64::INFINITY)]),
            gauge("m", "", vec![ndp(vec![], T, f64::NEG_INFINITY)]),
        ],
    );
    let t = run(&r);
    assert_eq!(
        render(&t),
        [
            format!("m{{}} -Inf @{T_MS}"),
            format!("n{{}} NaN @{T_MS}"),
            format!("p{{}} +Inf @{T_MS}")
        ]
    );
    let nan = t
        .series
        .iter()
        .flat_map(|s| &s.samples)
        .find(|s| s.value.is_nan())
        .unwrap();
    assert_ne!(nan.value.to_bits(), STALE_NAN_BITS);
}

#[test]
fn exponential_histogram_to_native() {
    // scale 0: positive buckets at OTel index 0..: [1, 0, 2] -> Prometheus index 1..
    // negative: offset -2, [3] -> index -1; gap of 4 empties between 1 and 6 opens a span.
    let mut dp = edp(0, 2, (0, &[1, 0, 2, 0, 0, 0, 0, 4]), (-2, &[3]));
    dp.zero_threshold = 0.001;
    let r = request(svc(), ("", ""), vec![expo("rpc.duration", CUM, vec![dp])]);
    let t = run(&r);
    assert_eq!(names(&t), ["rpc_duration_seconds"]);
    let h = &t.series[0].histograms[0];
    assert_eq!(h.schema, 0);
    assert_eq!(h.count, Some(ph::Count::CountInt(12)));
    assert_eq!(h.zero_count, Some(ph::ZeroCount::ZeroCountInt(2)));
    assert_eq!(h.zero_threshold, 0.001);
    assert_eq!(h.sum, 12.5);
    assert_eq!(h.timestamp, T_MS);
    let spans: Vec<(i32, u32)> = h
        .positive_spans
        .iter()
        .map(|s| (s.offset, s.length))
        .collect();
    assert_eq!(spans, [(1, 3), (4, 1)]);
    assert_eq!(h.positive_deltas, [1, -1, 2, 2]);
    let nspans: Vec<(i32, u32)> = h
        .negative_spans
        .iter()
        .map(|s| (s.offset, s.length))
        .collect();
    assert_eq!(nspans, [(-1, 1)]);
    assert_eq!(h.negative_deltas, [3]);
    // zero threshold left at 0 -> Prometheus' default
    let r = request(
        vec![],
        ("", ""),
        vec![expo("e", CUM, vec![edp(3, 0, (5, &[0, 1]), (0, &[]))])],
    );
    let h = &run(&r).series[0].histograms[0];
    assert_eq!(h.zero_threshold, histogram::DEFAULT_ZERO_THRESHOLD);
    assert_eq!(h.positive_spans[0].offset, 7);
    assert!(h.negative_spans.is_empty());
}

#[test]
fn exponential_scale_reduced_above_8_and_dropped_below_minus_4() {
    // scale 10 -> schema 8: 4 OTel buckets merge into one. OTel indexes 0..7 -> (i>>2)+1.
    let r = request(
        vec![],
        ("", ""),
        vec![expo(
            "e",
            CUM,
            vec![edp(10, 0, (0, &[1, 1, 1, 1, 2, 2, 2, 2]), (0, &[]))],
        )],
    );
    let h = &run(&r).series[0].histograms[0];
    assert_eq!(h.schema, 8);
    assert_eq!(
        h.positive_spans
            .iter()
            .map(|s| (s.offset, s.length))
            .collect::<Vec<_>>(),
        [(1, 2)]
    );
    assert_eq!(h.positive_deltas, [4, 4]);
    // negative offsets shift arithmetically: index -3 >> 2 = -1 -> Prometheus 0.
    let (spans, deltas) = histogram::bucket_layout(&[5, 1, 1, 1], -3, 2);
    assert_eq!((spans[0].offset, spans[0].length), (0, 2));
    assert_eq!(deltas, [7, -6]);
    let r = request(
        vec![],
        ("", ""),
        vec![expo("e", CUM, vec![edp(-5, 0, (0, &[1]), (0, &[]))])],
    );
    let t = run(&r);
    assert!(t.series.is_empty());
    assert_eq!(t.dropped, vec![(DropReason::UnsupportedScale, 1)]);
}

#[test]
fn summary_quantiles_sum_count() {
    let dp = SummaryDataPoint {
        time_unix_nano: T,
        count: 4,
        sum: 10.0,
        quantile_values: vec![
            ValueAtQuantile {
                quantile: 0.5,
                value: 2.0,
            },
            ValueAtQuantile {
                quantile: 0.99,
                value: 4.0,
            },
        ],
        ..Default::default()
    };
    let r = request(
        vec![],
        ("", ""),
        vec![metric(
            "rpc.latency",
            "ms",
            Data::Summary(Summary {
                data_points: vec![dp],
            }),
        )],
    );
    assert_eq!(
        render(&run(&r)),
        [
            format!("rpc_latency_milliseconds_count{{}} 4 @{T_MS}"),
            format!("rpc_latency_milliseconds_sum{{}} 10 @{T_MS}"),
            format!("rpc_latency_milliseconds{{quantile=\"0.5\"}} 2 @{T_MS}"),
            format!("rpc_latency_milliseconds{{quantile=\"0.99\"}} 4 @{T_MS}"),
        ]
    );
}

#[test]
fn exemplars_on_counter_and_histogram_buckets() {
    let ex = |v: f64| otlp::Exemplar {
        time_unix_nano: T,
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        value: Some(otlp::exemplar::Value::AsDouble(v)),
        filtered_attributes: vec![kv("user", "u1")],
    };
    let mut c = ndp(vec![], T, 3.0);
    c.exemplars = vec![ex(1.0)];
    let mut g = ndp(vec![], T, 3.0);
    g.exemplars = vec![ex(1.0)];
    let mut h = hdp(vec![], 3, None, &[1.0, 2.0], &[1, 1, 1]);
    h.exemplars = vec![ex(1.5), ex(99.0), ex(0.5)];
    let r = request(
        vec![],
        ("", ""),
        vec![
            sum("c", "", true, CUM, vec![c]),
            gauge("g", "", vec![g]),
            hist("h", "", CUM, vec![h]),
        ],
    );
    let t = run(&r);
    let by = |name: &str, le: Option<&str>| {
        t.series
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && le.is_none_or(|le| s.labels.iter().any(|l| l.name == "le" && l.value == le))
            })
            .unwrap()
    };
    let c = by("c_total", None);
    assert_eq!(c.exemplars.len(), 1);
    let e = &c.exemplars[0];
    assert_eq!(
        e.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect::<Vec<_>>(),
        [
            ("span_id", "abababababababab"),
            ("trace_id", "0102030405060708090a0b0c0d0e0f10"),
            ("user", "u1")
        ]
    );
    assert_eq!((e.value, e.timestamp), (1.0, T_MS));
    assert!(by("g", None).exemplars.is_empty());
    assert_eq!(by("h_bucket", Some("1")).exemplars[0].value, 0.5);
    assert_eq!(by("h_bucket", Some("2")).exemplars[0].value, 1.5);
    assert_eq!(by("h_bucket", Some("+Inf")).exemplars[0].value, 99.0);
    // all-zero ids are "not set"
    let e = exemplar(
        &points::Exemplar {
            trace_id: &[0; 16],
            ..Default::default()
        },
        &mut NameCache::default(),
    );
    assert!(e.labels.is_empty());
}

#[test]
fn timestamps_are_integer_milliseconds_and_zero_is_refused() {
    let r = request(
        vec![],
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![], 1_999_999, 1.0), ndp(vec![kv("a", "b")], 0, 2.0)],
        )],
    );
    let t = run(&r);
    assert_eq!(render(&t), ["g{} 1 @1"]);
    assert_eq!(t.dropped, vec![(DropReason::ZeroTimestamp, 1)]);
    // start timestamps never become samples
    assert_eq!(t.series.len(), 1);
    assert_eq!(t.series[0].samples.len(), 1);
}

#[test]
fn metadata_only_when_asked() {
    let r = request(
        svc(),
        ("", ""),
        vec![
            sum("http.requests", "1", true, CUM, vec![ndp(vec![], T, 1.0)]),
            gauge("mem", "By", vec![ndp(vec![], T, 1.0)]),
            hist("lat", "s", CUM, vec![hdp(vec![], 0, None, &[], &[])]),
            gauge("mem", "By", vec![ndp(vec![kv("a", "b")], T, 1.0)]),
        ],
    );
    assert!(run(&r).metadata.is_empty());
    let s = Settings {
        send_metadata: true,
        ..Settings::default()
    };
    let md: Vec<(i32, String, String, String)> = translate(&r, &s)
        .metadata
        .into_iter()
        .map(|m| (m.r#type, m.metric_family_name, m.help, m.unit))
        .collect();
    assert_eq!(
        md,
        [
            (
                MetricType::Counter as i32,
                "http_requests_total".into(),
                "help for http.requests".into(),
                "".into()
            ),
            (
                MetricType::Gauge as i32,
                "mem_bytes".into(),
                "help for mem".into(),
                "bytes".into()
            ),
            (
                MetricType::Histogram as i32,
                "lat_seconds".into(),
                "help for lat".into(),
                "seconds".into()
            ),
        ]
    );
}

#[test]
fn same_series_from_concatenated_batches_merge_in_time_order() {
    let later = request(
        svc(),
        ("", ""),
        vec![gauge("g", "", vec![ndp(vec![], T + 2_000_000_000, 2.0)])],
    );
    let earlier = request(
        svc(),
        ("", ""),
        vec![gauge(
            "g",
            "",
            vec![ndp(vec![], T, 1.0), ndp(vec![], T, 1.5)],
        )],
    );
    let mut bytes = later.encode_to_vec();
    bytes.extend(earlier.encode_to_vec());
    let merged = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    let t = run(&merged);
    assert_eq!(t.series.len(), 1);
    let s: Vec<(i64, f64)> = t.series[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(s, [(T_MS, 1.5), (T_MS + 2000, 2.0)]);
}

#[test]
fn requests_split_under_budget_and_encode_as_snappy_protobuf() {
    let pts: Vec<NumberDataPoint> = (0..200)
        .map(|i| ndp(vec![kv("i", &i.to_string())], T, i as f64))
        .collect();
    let r = request(svc(), ("", ""), vec![gauge("g", "", pts)]);
    let s = Settings {
        send_metadata: true,
        ..Settings::default()
    };
    let expected = translate(&r, &s);
    let t = translate_encoded(&r, &s);
    let reqs = t.requests(2000);
    assert!(reqs.len() > 3, "{}", reqs.len());
    let mut series = Vec::new();
    let mut md = 0;
    for raw in &reqs {
        assert!(raw.len() <= 2000, "{}", raw.len());
        let body = crate::translate::snappy::compress(raw).unwrap();
        let back = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(&back, raw);
        let wr = WriteRequest::decode(raw.as_slice()).unwrap();
        series.extend(wr.timeseries);
        md += wr.metadata.len();
    }
    assert_eq!(series, expected.series);
    assert_eq!((series.len(), md), (200, 1));
    // a single oversized series still goes out alone
    let two = translate_encoded(
        &request(
            vec![],
            ("", ""),
            vec![
                gauge("a", "", vec![ndp(vec![], T, 1.0)]),
                gauge("b", "", vec![ndp(vec![], T, 1.0)]),
            ],
        ),
        &Settings::default(),
    );
    assert_eq!(two.requests(1).len(), 2);
}

#[test]
fn metrics_without_data_or_points_write_nothing() {
    let m = Metric {
        name: "nodata".into(),
        ..Default::default()
    };
    let r = request(svc(), ("", ""), vec![m, gauge("empty", "", vec![])]);
    let t = run(&r);
    assert!(t.series.is_empty());
    assert!(t.dropped.is_empty());
}

/// Wraps `body` as length-delimited field `field`.
fn wrap(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

#[test]
fn unknown_fields_of_data_messages_are_skipped_whatever_their_wire_type() {
    // fields 2 and 3 mean temporality and monotonicity only where the message defines them
    // (Sum; Histogram and ExponentialHistogram have only 2): elsewhere they are unknown and
    // skipped, as prost does, even when length-delimited (found by the prw fuzz target).
    let hist = Histogram {
        data_points: vec![hdp(vec![], 2, Some(3.0), &[1.0], &[1, 1])],
        aggregation_temporality: CUM,
    }
    .encode_to_vec();
    let gauge = Gauge {
        data_points: vec![ndp(vec![], T, 4.0)],
    }
    .encode_to_vec();
    let request = |hist_extra: &[u8], gauge_extra: &[u8]| {
        let metric = |name: &str, data_field: u32, data: &[u8], extra: &[u8]| {
            let body = [data, extra].concat();
            [wrap(1, name.as_bytes()), wrap(data_field, &body)].concat()
        };
        let scope = [
            wrap(2, &metric("h", 9, &hist, hist_extra)),
            wrap(2, &metric("g", 5, &gauge, gauge_extra)),
        ]
        .concat();
        wrap(1, &wrap(2, &scope))
    };
    let plain = request(b"", b"");
    let unknown = request(
        &[wrap(3, b""), wrap(3, b"xy")].concat(),
        &[wrap(3, b""), wrap(2, b"z")].concat(),
    );
    for r in [&plain, &unknown] {
        let v = crate::pipeline::wire::validate_and_count(Signal::Metrics, r);
        assert_eq!(v.ok(), Some(2), "the receivers accept both");
    }
    let s = Settings::default();
    let want = translate_bytes(&plain, &s)
        .expect("plain")
        .requests(1 << 20);
    let got = translate_bytes(&unknown, &s).expect("unknown fields skipped");
    assert_eq!(got.requests(1 << 20), want);
    assert_eq!(got.series.len(), 5, "h: 2 buckets + sum + count, g: 1");
}
