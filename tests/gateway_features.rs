//! Config features end to end: resource and attributes processors (applied once, before
//! fan-out, per pipeline), named pipelines, TLS on the receiver, https destinations with a
//! custom CA, CORS for browser senders, health and self-metrics endpoints.

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::Gateway;
use support::{client, post_protobuf, trace_request, wait_until};

fn attr(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], k: &str) -> Option<Value> {
    attrs
        .iter()
        .find(|kv| kv.key == k)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_apply_per_pipeline_before_fan_out() {
    let edited = Capture::http().await;
    let raw = Capture::http().await;
    let body = format!(
        "processors:\n  resource:\n    attributes:\n      - {{ key: service.namespace, value: qa, action: upsert }}\n      - {{ key: owner, from_attribute: service.name, action: insert }}\n  attributes/scrub:\n    actions:\n      - {{ key: i, action: delete }}\n      - {{ key: env, value: staging, action: insert }}\n  batch: {{ timeout: 1s, send_batch_size: 15 }}\nexporters:\n  otlphttp/edited: {{ endpoint: \"{}\" }}\n  otlphttp/raw: {{ endpoint: \"{}\" }}\n",
        edited.url(),
        raw.url()
    );
    let pipelines = "  pipelines:\n    traces: { receivers: [otlp], processors: [resource, attributes/scrub, batch], exporters: [otlphttp/edited] }\n    traces/raw: { receivers: [otlp], exporters: [otlphttp/raw] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let url = gw.http_url("/v1/traces");
    let sends: Vec<_> = (0..5u64)
        .map(|r| post_protobuf(&url, trace_request("checkout", r * 10, 3)))
        .collect();
    for (st, _, _) in futures::future::join_all(sends).await {
        assert_eq!(st, 200);
    }
    assert!(
        wait_until(Duration::from_secs(5), || edited.span_count() == 15
            && raw.span_count() == 15)
        .await
    );
    let rec = edited.state.rec.lock().unwrap();
    assert!(
        rec.traces.len() < 5,
        "the batch processor merged requests ({} sends)",
        rec.traces.len()
    );
    for req in &rec.traces {
        for rs in &req.resource_spans {
            let res = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(
                attr(res, "service.namespace"),
                Some(Value::StringValue("qa".into()))
            );
            assert_eq!(
                attr(res, "owner"),
                Some(Value::StringValue("checkout".into()))
            );
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(attr(&s.attributes, "i"), None);
                assert_eq!(
                    attr(&s.attributes, "env"),
                    Some(Value::StringValue("staging".into()))
                );
            }
        }
    }
    let rec = raw.state.rec.lock().unwrap();
    for rs in rec.traces.iter().flat_map(|r| &r.resource_spans) {
        assert_eq!(
            attr(
                &rs.resource.as_ref().unwrap().attributes,
                "service.namespace"
            ),
            None,
            "the other pipeline is untouched"
        );
        assert!(
            rs.scope_spans[0]
                .spans
                .iter()
                .all(|s| attr(&s.attributes, "i").is_some())
        );
    }
}

fn cert() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (ck.cert.pem(), ck.key_pair.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_and_https_destination_with_custom_ca() {
    watchtower::install_crypto_provider();
    let (cert_pem, key_pem) = cert();
    let dir = tempfile::tempdir().unwrap();
    let (cf, kf) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cf, &cert_pem).unwrap();
    std::fs::write(&kf, &key_pem).unwrap();
    let dest = Capture::http().await;
    let tls_port = support::free_port();
    // start a TLS-only gateway by hand
    let cfg = format!(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{tls_port}\n        tls: {{ cert_file: {}, key_file: {} }}\nexporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nservice:\n  telemetry: {{ metrics: {{ address: \"\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [otlphttp] }}\n",
        cf.display(),
        kf.display(),
        dest.url()
    );
    let path = dir.path().join("tls.yaml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(support::gateway::binary())
        .args(["run", "--config"])
        .arg(&path)
        .spawn()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let tls_client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let url = format!("https://localhost:{tls_port}/v1/traces");
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = tls_client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(trace_request("tls", 1, 2))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "TLS receiver never answered");
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 2).await);
    // plain HTTP to the TLS port fails
    assert!(
        client()
            .post(format!("http://127.0.0.1:{tls_port}/v1/traces"))
            .body(vec![])
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );

    // now a gateway exporting to that https receiver with tls.ca_file
    let outer_body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"https://localhost:{tls_port}\", tls: {{ ca_file: {} }} }}\n",
        cf.display()
    );
    let outer = Gateway::start(
        &outer_body,
        "  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp] }\n",
    )
    .await;
    assert_eq!(
        post_protobuf(&outer.http_url("/v1/traces"), trace_request("tls", 10, 3))
            .await
            .0,
        200
    );
    assert!(
        wait_until(Duration::from_secs(5), || dest.span_count() == 5).await,
        "via https: {}",
        dest.span_count()
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_health_and_metrics() {
    let dest = Capture::http().await;
    let (grpc, http, health, metrics) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let cfg = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{grpc} }}\n      http:\n        endpoint: 127.0.0.1:{http}\n        cors: {{ allowed_origins: [\"https://*.example.com\"], max_age: 600 }}\n        traces_url_path: /custom/traces\nexporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  health_check: {{ endpoint: 127.0.0.1:{health}, path: /healthz }}\nservice:\n  extensions: [health_check]\n  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [otlphttp] }}\n",
        dest.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(support::gateway::binary())
        .args(["run", "--config"])
        .arg(&path)
        .spawn()
        .unwrap();
    let c = client();
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            health
        ))
        .is_ok())
        .await
    );
    let r = c
        .get(format!("http://127.0.0.1:{health}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Server available"));
    let pre = c
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{http}/custom/traces"),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://app.example.com")
    );
    assert_eq!(
        pre.headers()
            .get("access-control-max-age")
            .map(|v| v.to_str().unwrap()),
        Some("600")
    );
    let denied = c
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{http}/custom/traces"),
        )
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(
        post_protobuf(
            &format!("http://127.0.0.1:{http}/custom/traces"),
            trace_request("cors", 1, 1)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post_protobuf(
            &format!("http://127.0.0.1:{http}/v1/traces"),
            trace_request("cors", 1, 1)
        )
        .await
        .0,
        404,
        "the default path is replaced"
    );
    let text = c
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "otelcol_receiver_accepted_spans_total",
        "otelcol_exporter_queue_capacity",
        "otelcol_exporter_queue_size",
        "watchtower_process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    // the Collector's process metrics, with live values
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    assert!(value("otelcol_process_uptime_total") > 0.0);
    assert!(value("otelcol_process_cpu_seconds_total") >= 0.0);
    assert!(value("otelcol_process_memory_rss") > (1 << 20) as f64);
    let _ = child.kill();
    let _ = child.wait();
}
