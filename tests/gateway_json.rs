//! Hand-written OTLP/JSON (lowerCamelCase and snake_case keys, 64-bit integers as strings and
//! as numbers, hex ids, enums as integers) arrives at the destination as the equivalent
//! protobuf, for every signal.

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::{Gateway, pipelines};
use support::{client, wait_until};

const TRACES_CAMEL: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-camel"}}]},
 "scopeSpans":[{"scope":{"name":"lib","version":"1.0"},"spans":[{
   "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173",
   "name":"GET /items","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
   "attributes":[{"key":"http.status_code","value":{"intValue":"200"}},{"key":"ok","value":{"boolValue":true}},
                 {"key":"ratio","value":{"doubleValue":0.5}},{"key":"blob","value":{"bytesValue":"aGVsbG8="}}],
   "events":[{"timeUnixNano":"1544712660500000000","name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"IOError"}}]}],
   "status":{"code":2,"message":"boom"}}]}]}]}"#;

const TRACES_SNAKE: &str = r#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"json-snake"}}]},
 "scope_spans":[{"scope":{"name":"lib"},"spans":[{
   "trace_id":"5b8efff798038103d269b633813fc60d","span_id":"eee19b7ec3c1b175",
   "name":"POST /items","kind":3,"start_time_unix_nano":1544712660000000000,"end_time_unix_nano":1544712661000000000,
   "attributes":[{"key":"n","value":{"int_value":42}}]}]}]}]}"#;

const METRICS: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-metrics"}}]},
 "scopeMetrics":[{"metrics":[
   {"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
     "dataPoints":[{"asInt":"17","timeUnixNano":"1544712660000000000","attributes":[{"key":"route","value":{"stringValue":"/x"}}]}]}},
   {"name":"latency","unit":"ms","histogram":{"aggregationTemporality":2,
     "dataPoints":[{"count":"6","sum":42.5,"bucketCounts":["1","2","3"],"explicitBounds":[10,100],"timeUnixNano":"1544712660000000000"}]}},
   {"name":"temp","gauge":{"dataPoints":[{"asDouble":21.5,"time_unix_nano":1544712660000000000}]}}]}]}]}"#;

const LOGS: &str = r#"{"resource_logs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-logs"}}]},
 "scopeLogs":[{"logRecords":[
   {"timeUnixNano":"1544712660000000000","severityNumber":17,"severityText":"ERROR",
    "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"failed"}},{"key":"code","value":{"intValue":"7"}}]}},
    "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","attributes":[{"key":"user","value":{"stringValue":"bob"}}]},
   {"time_unix_nano":1544712660000000001,"body":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":1}]}}}]}]}]}"#;

async fn post_json(url: &str, body: &str) -> (u16, String) {
    let r = client()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_arrives_as_equivalent_protobuf() {
    let dest = Capture::http().await;
    let gw = Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        &pipelines("", "otlphttp"),
    )
    .await;
    for body in [TRACES_CAMEL, TRACES_SNAKE] {
        let (st, resp) = post_json(&gw.http_url("/v1/traces"), body).await;
        assert_eq!(
            (st, resp.as_str()),
            (200, "{}"),
            "JSON requests get JSON answers"
        );
    }
    assert_eq!(post_json(&gw.http_url("/v1/metrics"), METRICS).await.0, 200);
    assert_eq!(post_json(&gw.http_url("/v1/logs"), LOGS).await.0, 200);
    assert!(
        wait_until(Duration::from_secs(5), || dest.span_count() == 2
            && dest.logs().len() == 2
            && dest.metric_points().len() == 3)
        .await
    );

    let spans = dest.spans();
    let (svc, s) = spans
        .iter()
        .find(|(s, _)| s == "json-camel")
        .expect("camel span");
    assert_eq!(svc, "json-camel");
    assert_eq!(hex::encode(&s.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex::encode(&s.span_id), "eee19b7ec3c1b174");
    assert_eq!(hex::encode(&s.parent_span_id), "eee19b7ec3c1b173");
    assert_eq!(
        (s.kind, s.start_time_unix_nano, s.end_time_unix_nano),
        (2, 1544712660000000000, 1544712661000000000)
    );
    let attr = |k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(attr("http.status_code"), Some(Value::IntValue(200)));
    assert_eq!(attr("ok"), Some(Value::BoolValue(true)));
    assert_eq!(attr("ratio"), Some(Value::DoubleValue(0.5)));
    assert_eq!(attr("blob"), Some(Value::BytesValue(b"hello".to_vec())));
    assert_eq!(s.events[0].time_unix_nano, 1544712660500000000);
    assert_eq!(
        s.status.as_ref().map(|st| (st.code, st.message.as_str())),
        Some((2, "boom"))
    );
    let (_, s2) = spans
        .iter()
        .find(|(s, _)| s == "json-snake")
        .expect("snake span");
    assert_eq!(
        (s2.kind, s2.start_time_unix_nano, s2.name.as_str()),
        (3, 1544712660000000000, "POST /items")
    );
    assert_eq!(
        s2.attributes[0].value.clone().and_then(|v| v.value),
        Some(Value::IntValue(42))
    );

    let rec = dest.state.rec.lock().unwrap();
    let metrics = &rec.metrics[0].resource_metrics[0].scope_metrics[0].metrics;
    match &metrics[0].data {
        Some(Data::Sum(sum)) => {
            assert!(sum.is_monotonic);
            assert_eq!(sum.aggregation_temporality, 2);
            assert_eq!(
                sum.data_points[0].value,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(17))
            );
        }
        other => panic!("{other:?}"),
    }
    match &metrics[1].data {
        Some(Data::Histogram(h)) => {
            let dp = &h.data_points[0];
            assert_eq!(
                (
                    dp.count,
                    dp.sum,
                    dp.bucket_counts.clone(),
                    dp.explicit_bounds.clone()
                ),
                (6, Some(42.5), vec![1, 2, 3], vec![10.0, 100.0])
            );
        }
        other => panic!("{other:?}"),
    }
    match &metrics[2].data {
        Some(Data::Gauge(g)) => assert_eq!(g.data_points[0].time_unix_nano, 1544712660000000000),
        other => panic!("{other:?}"),
    }
    let logs = &rec.logs[0].resource_logs[0].scope_logs[0].log_records;
    assert_eq!(
        (logs[0].severity_number, logs[0].severity_text.as_str()),
        (17, "ERROR")
    );
    assert_eq!(
        hex::encode(&logs[0].trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    match logs[0].body.as_ref().and_then(|b| b.value.clone()) {
        Some(Value::KvlistValue(kv)) => assert_eq!(
            kv.values[1].value.clone().and_then(|v| v.value),
            Some(Value::IntValue(7))
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(logs[1].time_unix_nano, 1544712660000000001);
    drop(rec);
    assert_eq!(
        gw.metric("otelcol_receiver_accepted_metric_points_total", &[])
            .await,
        3.0
    );
}
