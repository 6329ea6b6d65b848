//! OTLP/JSON written by encoders that are not Watchtower's decodes to exactly the protobuf
//! they meant:
//! - random requests of all three signals (every field and oneof), written by Python
//!   protobuf's `json_format` and rewritten the ways OTLP clients write OTLP/JSON (hex ids,
//!   enums as names or numbers, doubles as strings, 64-bit integers as numbers), decode to the
//!   same message, doubles bit for bit;
//! - the opentelemetry-proto repository's `examples/*.json` arrive at a destination equal,
//!   field by field, to what `json_format` reads from them;
//! - every class of type error is a 400 naming the JSON path, and nothing is forwarded.

mod support;

use base64::Engine;
use prost::Message;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::{Gateway, pipelines};
use support::{client, wait_until};
use watchtower::pipeline::payload::Signal;
use watchtower::proto::otlp_json::opentelemetry::proto::collector;
use watchtower::receiver::json::json_to_protobuf;

#[derive(serde::Deserialize)]
struct Case {
    signal: String,
    json: String,
    proto: String,
}

fn oracle(args: &[&str]) -> Vec<Case> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/otlp_json_oracle.py"
    );
    let out = std::process::Command::new(support::python())
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "otlp_json_oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle line"))
        .collect()
}

fn signal(name: &str) -> Signal {
    match name {
        "traces" => Signal::Traces,
        "metrics" => Signal::Metrics,
        "logs" => Signal::Logs,
        other => panic!("signal {other}"),
    }
}

/// The binary message re-encoded by prost (so both sides have the same field order), and its
/// debug form for failure messages.
fn normalize(sig: Signal, proto: &[u8]) -> (Vec<u8>, String) {
    fn go<T: Message + Default + std::fmt::Debug>(b: &[u8]) -> (Vec<u8>, String) {
        let m = T::decode(b).expect("valid protobuf");
        (m.encode_to_vec(), format!("{m:#?}"))
    }
    match sig {
        Signal::Traces => go::<collector::trace::v1::ExportTraceServiceRequest>(proto),
        Signal::Metrics => go::<collector::metrics::v1::ExportMetricsServiceRequest>(proto),
        Signal::Logs => go::<collector::logs::v1::ExportLogsServiceRequest>(proto),
    }
}

#[test]
fn python_json_format_requests_decode_to_the_same_protobuf() {
    let cases = oracle(&["random", "20261129", "80"]);
    assert_eq!(cases.len(), 240);
    let mut doubles_as_strings = 0;
    for (i, c) in cases.iter().enumerate() {
        let sig = signal(&c.signal);
        let want = base64::engine::general_purpose::STANDARD
            .decode(&c.proto)
            .unwrap();
        let got = json_to_protobuf(sig, c.json.as_bytes())
            .unwrap_or_else(|e| panic!("case {i} ({sig}) refused: {e}\n{}", c.json));
        let (want, want_dbg) = normalize(sig, &want);
        let (got, got_dbg) = normalize(sig, &got);
        // byte equality of the prost encodings: every field, doubles bit for bit
        assert!(
            want == got,
            "case {i} ({sig}) differs\njson: {}\nwant: {want_dbg}\ngot: {got_dbg}",
            c.json
        );
        doubles_as_strings += c.json.matches("Value\": \"").count();
    }
    // the rewrites did happen (the generator is seeded, so this is stable)
    assert!(doubles_as_strings > 0);
    for needle in [
        "SPAN_KIND_",
        "SEVERITY_NUMBER_",
        "AGGREGATION_TEMPORALITY_",
        "\"NaN\"",
    ] {
        assert!(
            cases.iter().any(|c| c.json.contains(needle)),
            "no case has {needle}"
        );
    }
}

async fn post_json(url: &str, body: &str) -> (u16, String) {
    let r = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn url_path(sig: Signal) -> &'static str {
    match sig {
        Signal::Traces => "/v1/traces",
        Signal::Metrics => "/v1/metrics",
        Signal::Logs => "/v1/logs",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_examples_arrive_field_by_field() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/test-data/otlp-json-examples");
    let files: Vec<String> = ["trace", "metrics", "logs", "events"]
        .iter()
        .map(|f| format!("{dir}/{f}.json"))
        .collect();
    let args: Vec<&str> = std::iter::once("examples")
        .chain(files.iter().map(String::as_str))
        .collect();
    let cases = oracle(&args);
    assert_eq!(cases.len(), 4);

    let dest = Capture::http().await;
    let gw = Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        &pipelines("", "otlphttp"),
    )
    .await;
    for c in &cases {
        let (st, body) = post_json(&gw.http_url(url_path(signal(&c.signal))), &c.json).await;
        assert_eq!((st, body.as_str()), (200, "{}"), "{}", c.signal);
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            let rec = dest.state.rec.lock().unwrap();
            rec.traces.len() == 1 && rec.metrics.len() == 1 && rec.logs.len() == 2
        })
        .await,
        "every example arrives"
    );
    // compare as the destination decoded them (opentelemetry-proto types): field by field
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    let rec = dest.state.rec.lock().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let mut logs_seen = 0;
    for c in &cases {
        let want = b64(&c.proto);
        match signal(&c.signal) {
            Signal::Traces => {
                let want = trace::v1::ExportTraceServiceRequest::decode(&want[..]).unwrap();
                assert!(!want.resource_spans.is_empty());
                assert_eq!(rec.traces[0], want);
            }
            Signal::Metrics => {
                let want = metrics::v1::ExportMetricsServiceRequest::decode(&want[..]).unwrap();
                assert!(!want.resource_metrics.is_empty());
                assert_eq!(rec.metrics[0], want);
            }
            Signal::Logs => {
                let want = logs::v1::ExportLogsServiceRequest::decode(&want[..]).unwrap();
                assert!(rec.logs.contains(&want), "{want:#?}");
                logs_seen += 1;
            }
        }
    }
    assert_eq!(logs_seen, 2);
}

/// One body per class of type error, the path its answer must name.
fn bad_bodies() -> Vec<(Signal, String, &'static str)> {
    let m = |data: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"ok","gauge":{{"dataPoints":[{{"asDouble":1}}]}}}},{{"name":"bad",{data}}}]}}]}}]}}"#
        )
    };
    let s = |span: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok"}},{{{span}}}]}}]}}]}}"#
        )
    };
    let l = |rec: &str| {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"ok"}}}},{{{rec}}}]}}]}}]}}"#
        )
    };
    let mp = "resourceMetrics[0].scopeMetrics[0].metrics[1]";
    vec![
        (
            Signal::Metrics,
            m(r#""sum":{"aggregationTemporality":"CUMULATIVE","dataPoints":[{"asInt":1}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].sum.aggregationTemporality",
        ),
        (
            Signal::Metrics,
            m(r#""gauge":{"dataPoints":[{"asDouble":"lots"}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].asDouble",
        ),
        (
            Signal::Metrics,
            m(r#""gauge":{"dataPoints":[{"asDouble":1,"flags":"x"}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].flags",
        ),
        (
            Signal::Metrics,
            m(r#""gauge":{"dataPoints":[{"asDouble":1,"timeUnixNano":"yesterday"}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].timeUnixNano",
        ),
        (
            Signal::Metrics,
            m(r#""gauge":{"dataPoints":[{"asDouble":1,"exemplars":[{"spanId":"zz"}]}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].exemplars[0].spanId",
        ),
        (
            Signal::Metrics,
            m(r#""histogram":{"dataPoints":[{"count":"1.5"}]}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].histogram.dataPoints[0].count",
        ),
        (
            Signal::Metrics,
            m(r#""gauge":{"dataPoints":{}}"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints",
        ),
        (Signal::Metrics, m(r#""gauge":{},"sum":{}"#), mp),
        (
            Signal::Traces,
            s(r#""kind":"SERVER""#),
            "resourceSpans[0].scopeSpans[0].spans[1].kind",
        ),
        (
            Signal::Traces,
            s(r#""traceId":"W47/95gDgQPSabYzgT/GDA==""#),
            "resourceSpans[0].scopeSpans[0].spans[1].traceId",
        ),
        (
            Signal::Traces,
            s(r#""startTimeUnixNano":-5"#),
            "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano",
        ),
        (
            Signal::Traces,
            s(r#""attributes":[{"key":"k","value":{"doubleValue":"x"}}]"#),
            "resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.doubleValue",
        ),
        (
            Signal::Traces,
            s(r#""attributes":[{"key":"k","value":{"bytesValue":"***"}}]"#),
            "resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.bytesValue",
        ),
        (
            Signal::Traces,
            s(r#""name":["a"]"#),
            "resourceSpans[0].scopeSpans[0].spans[1].name",
        ),
        (
            Signal::Traces,
            s(r#""status":{"code":true}"#),
            "resourceSpans[0].scopeSpans[0].spans[1].status.code",
        ),
        (
            Signal::Logs,
            l(r#""severityNumber":"WARN""#),
            "resourceLogs[0].scopeLogs[0].logRecords[1].severityNumber",
        ),
        (
            Signal::Logs,
            l(r#""flags":4294967296"#),
            "resourceLogs[0].scopeLogs[0].logRecords[1].flags",
        ),
        (
            Signal::Logs,
            l(r#""body":{"intValue":"9223372036854775808"}"#),
            "resourceLogs[0].scopeLogs[0].logRecords[1].body.intValue",
        ),
        (
            Signal::Logs,
            l(r#""body":"text""#),
            "resourceLogs[0].scopeLogs[0].logRecords[1].body",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_error_class_is_a_400_naming_the_path() {
    let dest = Capture::http().await;
    let gw = Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        &pipelines("", "otlphttp"),
    )
    .await;
    let cases = bad_bodies();
    for (sig, body, path) in &cases {
        let (st, answer) = post_json(&gw.http_url(url_path(*sig)), body).await;
        assert_eq!(st, 400, "{body}: {answer}");
        let status: serde_json::Value = serde_json::from_str(&answer).expect("JSON status");
        let msg = status["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!(" at {path}: ")),
            "{path} not in {msg}"
        );
        assert!(
            msg.contains("expected") || msg.contains("duplicate field"),
            "{msg}"
        );
    }
    // a good request after them is forwarded, and the bad ones were not
    let ok = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ok"}}]}]}]}"#;
    assert_eq!(post_json(&gw.http_url("/v1/logs"), ok).await.0, 200);
    assert!(wait_until(Duration::from_secs(5), || dest.logs().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        dest.requests(),
        1,
        "nothing of a refused request is forwarded"
    );
    let refused = gw
        .metric(
            "watchtower_receiver_refused_requests_total",
            &["reason=\"bad_data\""],
        )
        .await;
    assert_eq!(refused, cases.len() as f64);
}
