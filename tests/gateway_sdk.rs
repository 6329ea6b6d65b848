//! A real OTLP client (the OpenTelemetry Python SDK, gRPC and HTTP exporters) sends known
//! spans, metrics and logs through the gateway to two destinations at once (OTLP/HTTP and
//! OTLP/gRPC); both must receive exactly what was sent, item by item.

mod support;

use std::time::Duration;
use support::capture::Capture;
use support::gateway::{Gateway, pipelines};

#[derive(serde::Deserialize, Debug)]
struct Sent {
    spans: Vec<SentItem>,
    logs: Vec<SentLog>,
}
#[derive(serde::Deserialize, Debug)]
struct SentItem {
    name: String,
    trace_id: String,
    span_id: String,
}
#[derive(serde::Deserialize, Debug)]
struct SentLog {
    body: String,
    trace_id: String,
    span_id: String,
}

fn send(proto: &str, endpoint: &str, tag: &str) -> Sent {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sdk_send.py");
    let out = std::process::Command::new(support::python())
        .args([script, proto, endpoint, tag])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sdk_send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad sdk output {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn check_destination(dest: &Capture, sent: &Sent, tag: &str) {
    let spans = dest.spans();
    assert_eq!(
        spans.len(),
        sent.spans.len(),
        "span count at {}",
        dest.url()
    );
    for s in &sent.spans {
        let got = spans
            .iter()
            .find(|(_, sp)| hex::encode(&sp.span_id) == s.span_id)
            .unwrap_or_else(|| panic!("span {} missing", s.name));
        assert_eq!(got.0, format!("sdk-{tag}"));
        assert_eq!(got.1.name, s.name);
        assert_eq!(hex::encode(&got.1.trace_id), s.trace_id);
    }
    let parent = spans
        .iter()
        .find(|(_, s)| s.name == format!("{tag}-op-1"))
        .expect("parent span");
    let attrs: Vec<_> = parent
        .1
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert!(attrs.contains(&"i") && attrs.contains(&"tag"), "{attrs:?}");
    let logs = dest.logs();
    assert_eq!(logs.len(), sent.logs.len());
    for l in &sent.logs {
        let got = logs
            .iter()
            .find(|(_, r)| matches!(r.body.as_ref().and_then(|b| b.value.as_ref()), Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) if *s == l.body))
            .unwrap_or_else(|| panic!("log {:?} missing", l.body));
        assert_eq!(hex::encode(&got.1.trace_id), l.trace_id, "log trace id");
        assert_eq!(hex::encode(&got.1.span_id), l.span_id, "log span id");
    }
    let points = dest.metric_points();
    assert_eq!(
        points.get(&format!("{tag}.requests")),
        Some(&1),
        "{points:?}"
    );
    assert_eq!(
        points.get(&format!("{tag}.latency")),
        Some(&1),
        "{points:?}"
    );
}

async fn run(proto: &'static str) {
    run_with_env(proto, &[]).await
}

async fn run_with_env(proto: &'static str, env: &[(&str, &str)]) {
    let http_dest = Capture::http().await;
    let grpc_dest = Capture::grpc().await;
    let body = format!(
        "exporters:\n  otlphttp/a: {{ endpoint: \"{}\" }}\n  otlp/b: {{ endpoint: \"{}\", tls: {{ insecure: true }} }}\n",
        http_dest.url(),
        grpc_dest.addr
    );
    let gw = Gateway::start_with_env(&body, &pipelines("", "otlphttp/a, otlp/b"), "", env).await;
    let endpoint = if proto == "grpc" {
        gw.grpc_url()
    } else {
        gw.http_url("")
    };
    let tag = format!("t{proto}");
    let sent = tokio::task::spawn_blocking(move || send(proto, &endpoint, &tag))
        .await
        .unwrap();
    let total = sent.spans.len();
    assert!(
        support::wait_until(Duration::from_secs(10), || http_dest.span_count() >= total
            && grpc_dest.span_count() >= total
            && http_dest.logs().len() >= 3
            && grpc_dest.logs().len() >= 3
            && http_dest.metric_points().len() >= 2
            && grpc_dest.metric_points().len() >= 2)
        .await,
        "not everything arrived"
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // nothing extra arrives late
    let tag = format!("t{proto}");
    check_destination(&http_dest, &sent, &tag);
    check_destination(&grpc_dest, &sent, &tag);
    let transport = format!("transport=\"{proto}\"");
    assert_eq!(
        gw.metric("otelcol_receiver_accepted_spans_total", &[&transport])
            .await,
        total as f64
    );
    assert_eq!(
        gw.metric(
            "otelcol_exporter_sent_spans_total",
            &["exporter=\"otlp/b\""]
        )
        .await,
        total as f64
    );
    assert_eq!(
        gw.metric(
            "otelcol_exporter_sent_log_records_total",
            &["exporter=\"otlphttp/a\""]
        )
        .await,
        3.0
    );
    assert_eq!(
        gw.metric("otelcol_receiver_accepted_metric_points_total", &[])
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_fans_out_to_http_and_grpc_destinations() {
    run("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_fans_out_to_http_and_grpc_destinations() {
    run("http").await;
}

/// A gateway limited to one thread (a sidecar with less than a core) runs tokio's
/// current-thread scheduler: the same traffic arrives, counted, on both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_thread_gateway_fans_out_both_protocols() {
    run_with_env("grpc", &[("TOKIO_WORKER_THREADS", "1")]).await;
    run_with_env("http", &[("TOKIO_WORKER_THREADS", "1")]).await;
}
