//! `filter` and `transform` end to end: the OpenTelemetry Python SDK sends health-check and
//! business spans and logs with e-mail addresses through the gateway. The traces pipeline
//! drops the health checks; the vendor's logs pipeline redacts the addresses while a second
//! logs pipeline (no transform) delivers the originals to another destination.

mod support;

use opentelemetry_proto::tonic::common::v1::any_value;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::Gateway;

#[derive(serde::Deserialize, Debug)]
struct Sent {
    health: Vec<String>,
    checkout: Vec<String>,
    logs: Vec<String>,
}

fn send(endpoint: &str) -> Sent {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/sdk_processing.py"
    );
    let out = std::process::Command::new(support::python())
        .args([script, endpoint])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sdk_processing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sdk output")
}

fn bodies(c: &Capture) -> Vec<String> {
    let mut b: Vec<String> = c
        .logs()
        .iter()
        .filter_map(|(_, r)| match r.body.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    b.sort();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_dropped_and_pii_redacted_for_one_destination_only() {
    let vendor = Capture::http().await;
    let raw = Capture::http().await;
    let body = format!(
        r#"processors:
  filter/health:
    error_mode: ignore
    traces:
      span:
        - 'attributes["http.route"] == "/healthz" and kind == SPAN_KIND_SERVER'
  transform/pii:
    error_mode: ignore
    log_statements:
      - context: log
        statements:
          - 'replace_pattern(body, "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[a-z]+", "<email>")'
          - 'set(attributes["redacted"], true) where IsMatch(body, "<email>")'
exporters:
  otlphttp/vendor: {{ endpoint: "{}" }}
  otlphttp/raw: {{ endpoint: "{}" }}
"#,
        vendor.url(),
        raw.url()
    );
    let pipelines = "  pipelines:\n    traces: { receivers: [otlp], processors: [filter/health], exporters: [otlphttp/vendor] }\n    logs/vendor: { receivers: [otlp], processors: [transform/pii], exporters: [otlphttp/vendor] }\n    logs/raw: { receivers: [otlp], exporters: [otlphttp/raw] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let endpoint = gw.http_url("");
    let sent = tokio::task::spawn_blocking(move || send(&endpoint))
        .await
        .unwrap();
    assert!(
        support::wait_until(Duration::from_secs(10), || vendor.span_count() >= 2
            && vendor.logs().len() >= 3
            && raw.logs().len() >= 3)
        .await,
        "not everything arrived: spans {} vendor logs {} raw logs {}",
        vendor.span_count(),
        vendor.logs().len(),
        raw.logs().len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // traces: exactly the checkout spans
    let mut got: Vec<String> = vendor
        .spans()
        .iter()
        .map(|(_, s)| hex::encode(&s.span_id))
        .collect();
    got.sort();
    let mut want = sent.checkout.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(sent.health.iter().all(|h| !got.contains(h)));
    assert_eq!(
        gw.metric(
            "otelcol_processor_filter_spans_filtered_total",
            &["filter=\"filter/health\""]
        )
        .await,
        3.0
    );

    // logs: redacted at the vendor, original at the raw destination
    let mut original = sent.logs.clone();
    original.sort();
    assert_eq!(bodies(&raw), original);
    let redacted = bodies(&vendor);
    assert_eq!(
        redacted,
        vec![
            "order 0 paid by <email>",
            "order 1 paid by <email>",
            "order 2 paid by <email>"
        ]
    );
    assert!(
        vendor
            .logs()
            .iter()
            .all(|(_, r)| r.attributes.iter().any(|kv| kv.key == "redacted"))
    );
    assert!(
        raw.logs()
            .iter()
            .all(|(_, r)| r.attributes.iter().all(|kv| kv.key != "redacted"))
    );
}

#[test]
fn ottl_errors_name_the_statement_line_and_column() {
    let cfg = r#"receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:4318 }
processors:
  transform:
    trace_statements:
      - context: span
        statements:
          - 'set(name, "x")'
          - 'flatten(attributes)'
  filter:
    logs:
      log_record:
        - 'severity_number < SEVERITY_NUMBER_WARN'
        - 'body == "a" and kind == 2'
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [transform], exporters: [debug] }
"#;
    let errs = watchtower::config::parse(cfg, &|_| None).unwrap_err();
    let text = errs.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(
            |l| l.starts_with("line 11: processors.transform.trace_statements")
                && l.contains("column 1: unsupported editor \"flatten\"")
        ),
        "{text}"
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("line 16: processors.filter.logs.log_record")
                && l.contains("column 17: unsupported path \"kind\" in the log context")
        ),
        "{text}"
    );
    assert_eq!(lines.len(), 2, "{text}");
}
