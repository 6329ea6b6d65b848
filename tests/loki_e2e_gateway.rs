//! End to end: the OpenTelemetry Python SDK log exporter (gRPC and HTTP) -> the gateway
//! binary (`watchtower run`) -> `loki` exporter -> the Loki double in this test process. Every
//! record must arrive once, with the right labels, structured metadata and line, and a log
//! emitted inside a span must carry that span's trace id.

mod loki_double;
mod support;

use loki_double::LokiDouble;
use std::time::Duration;
use support::gateway::Gateway;

#[derive(serde::Deserialize, Debug)]
struct SentLog {
    body: String,
    trace_id: Option<String>,
    span_id: Option<String>,
    severity: String,
    order_id: String,
}

fn send(proto: &str, endpoint: &str, tag: &str) -> Vec<SentLog> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/loki_double/sdk_logs.py");
    let out = std::process::Command::new(support::python())
        .args([script, proto, endpoint, tag])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sdk_logs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad sdk output {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn run(proto: &'static str) {
    let loki = LokiDouble::start().await;
    let body = format!(
        "exporters:\n  loki:\n    endpoint: \"{}\"\n    headers: {{ X-Scope-OrgID: qa-tenant }}\n    retry_on_failure: {{ initial_interval: 100ms }}\n",
        loki.url()
    );
    let pipelines = "  pipelines:\n    logs: { receivers: [otlp], exporters: [loki] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let endpoint = if proto == "grpc" {
        gw.grpc_url()
    } else {
        gw.http_url("")
    };
    let tag = format!("t{proto}");
    let sent = {
        let (endpoint, tag) = (endpoint.clone(), tag.clone());
        tokio::task::spawn_blocking(move || send(proto, &endpoint, &tag))
            .await
            .expect("join")
    };
    assert_eq!(sent.len(), 5);
    assert!(
        support::wait_until(Duration::from_secs(15), || loki.stored().len()
            >= sent.len())
        .await,
        "only {} of {} records reached Loki",
        loki.stored().len(),
        sent.len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // nothing arrives twice or late
    let stored = loki.stored();
    assert_eq!(
        stored.len(),
        sent.len(),
        "every record exactly once: {stored:#?}"
    );
    let selector =
        format!(r#"{{k8s_pod_name="pod-1", service_name="loki-{tag}", service_namespace="qa"}}"#);
    for s in &sent {
        let got: Vec<_> = stored.iter().filter(|e| e.line == s.body).collect();
        assert_eq!(got.len(), 1, "record {:?} must arrive once", s.body);
        let e = got[0];
        assert_eq!(e.selector, selector);
        assert_eq!(e.tenant.as_deref(), Some("qa-tenant"));
        let md = &e.metadata;
        assert_eq!(
            md.get("severity_text").map(String::as_str),
            Some(s.severity.as_str())
        );
        assert_eq!(md.get("order_id"), Some(&s.order_id), "{md:?}");
        assert_eq!(md.get("team_id").map(String::as_str), Some("t7"));
        assert_eq!(
            md.get("scope_name").map(String::as_str),
            Some(format!("e2e.{tag}").as_str())
        );
        assert!(md.contains_key("severity_number"));
        assert!(!md.contains_key("service_name") && !md.contains_key("k8s_pod_name"));
        assert_eq!(
            md.get("trace_id"),
            s.trace_id.as_ref(),
            "trace id of {:?}",
            s.body
        );
        assert_eq!(md.get("span_id"), s.span_id.as_ref());
        assert!(e.ts > 1_600_000_000_000_000_000, "real timestamp");
    }
    let in_span = sent.iter().filter(|s| s.trace_id.is_some()).count();
    assert_eq!(in_span, 3);
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_logs_reach_loki() {
    run("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_logs_reach_loki() {
    run("http").await;
}
