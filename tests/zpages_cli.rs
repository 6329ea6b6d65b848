//! `watchtower tap`, `wait` and `recent` against a gateway child process (exit codes,
//! filters, --json, --limit, --duration), and secrets masked in the gateway's logs (failed
//! sends to a Sumo-style URL with credentials) and in `validate` output.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::gateway::binary;
use support::{client, free_port, post_protobuf, trace_request};

const TOKEN: &str = "SUMOTOKEN0123456789abcdef";

struct Gw {
    child: std::process::Child,
    http: u16,
    zpages: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gateway() -> Gw {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let (http, zpages, dead) = (free_port(), free_port(), free_port());
        let cfg = format!(
            "receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:{http} }}\n\
exporters:\n  debug: {{ verbosity: basic }}\n  otlphttp/sumo:\n    endpoint: http://user:pa55word@127.0.0.1:{dead}/receiver/v1/otlp/{TOKEN}\n    retry_on_failure: {{ enabled: false }}\n\
extensions:\n  zpages: {{ endpoint: 127.0.0.1:{zpages} }}\n\
service:\n  extensions: [zpages]\n  telemetry: {{ metrics: {{ address: \"\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [debug] }}\n    logs: {{ receivers: [otlp], exporters: [otlphttp/sumo] }}\n"
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.path().join("gateway.log");
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut gw = Gw {
            child,
            http,
            zpages,
            log,
            _dir: tempfile::tempdir().unwrap(),
        };
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = gw.child.try_wait() {
                break;
            }
            if let Ok(r) = client()
                .get(format!("http://127.0.0.1:{zpages}/api/v1/status"))
                .send()
                .await
                && r.status() == 200
            {
                // keep the config dir alive with the gateway
                gw._dir = dir;
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    panic!("gateway with zpages did not start");
}

fn cli(gw: &Gw, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(binary());
    c.args(args)
        .arg("--endpoint")
        .arg(format!("127.0.0.1:{}", gw.zpages))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until the gateway has `n` tap viewers.
async fn viewers(gw: &Gw, n: u64) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let t = client()
            .get(format!("http://127.0.0.1:{}/api/v1/status", gw.zpages))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["tap"]["viewers"].as_u64() == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("tap viewers never reached {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_tap_and_recent() {
    let gw = gateway().await;
    let url = format!("http://127.0.0.1:{}/v1/traces", gw.http);
    // wait: matches the checkout span named span-12 only
    let waiter = cli(
        &gw,
        &[
            "wait",
            "--signal",
            "traces",
            "--service",
            "checkout",
            "--name",
            "span-12",
            "--timeout",
            "20s",
        ],
    )
    .spawn()
    .unwrap();
    let tapper = cli(
        &gw,
        &["tap", "--json", "--service", "checkout", "--limit", "3"],
    )
    .spawn()
    .unwrap();
    viewers(&gw, 2).await;
    post_protobuf(&url, trace_request("cart", 12, 1)).await;
    post_protobuf(&url, trace_request("checkout", 10, 5)).await;
    let out = waiter.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains("checkout") && line.contains("\"span-12\""),
        "{line}"
    );
    let out = tapper.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("--json prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), 3, "--limit 3");
    assert!(lines.iter().all(|v| v["service"] == "checkout"));
    assert_eq!(lines[0]["name"], "span-10");
    assert!(lines[0]["otlp"]["resourceSpans"].is_array());
    // timeout: exit 1
    let t0 = Instant::now();
    let out = cli(&gw, &["wait", "--service", "nobody", "--timeout", "500ms"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(t0.elapsed() < Duration::from_secs(10));
    // --duration ends a tap that sees nothing
    let out = cli(&gw, &["tap", "--service", "nobody", "--duration", "300ms"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    // usage and connection errors: exit 2
    let out = cli(&gw, &["wait", "--signal", "spans", "--timeout", "5s"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signal"));
    let out = tokio::process::Command::new(binary())
        .args([
            "wait",
            "--endpoint",
            &format!("127.0.0.1:{}", free_port()),
            "--timeout",
            "5s",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = tokio::process::Command::new(binary())
        .args(["wait", "--timeout", "soon"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad duration is a usage error");
    // recent: one line per item, filtered
    let out = cli(&gw, &["recent", "--service", "checkout", "--limit", "2"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("\"span-13\"") && lines[1].contains("\"span-14\""),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.contains(" checkout ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_masked_in_logs_and_validate() {
    let gw = gateway().await;
    let url = format!("http://127.0.0.1:{}/v1/logs", gw.http);
    let body = {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    assert_eq!(post_protobuf(&url, body).await.0, 200);
    let end = Instant::now() + Duration::from_secs(10);
    let mut log = String::new();
    while Instant::now() < end {
        log = std::fs::read_to_string(&gw.log).unwrap_or_default();
        if log.contains("dropping batch") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log.contains("dropping batch"), "{log}");
    assert!(
        log.contains("/receiver/v1/otlp/***"),
        "the URL is logged, masked: {log}"
    );
    // shutdown logs too
    unsafe {
        libc::kill(gw.child.id() as i32, libc::SIGTERM);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = std::fs::read_to_string(&gw.log).unwrap_or_default();
    assert!(!log.contains(TOKEN) && !log.contains("pa55word"), "{log}");

    // validate: an invalid URL with a token, and a headers value written as a string
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        format!("  otlphttp/a:\n    endpoint: \"ht tp://u:pa55word@h/receiver/v1/otlp/{TOKEN}\"\n"),
        format!("  otlphttp/a:\n    endpoint: \"ftp://h/receiver/v1/otlp/{TOKEN}\"\n"),
        format!("  otlphttp/a:\n    endpoint: http://h:4318\n    headers: \"Authorization: Bearer {TOKEN}\"\n"),
        format!("  otlp/a:\n    endpoint: \"h:4317\"\n    headers: {{ \"bad header\": \"{TOKEN}\" }}\n"),
        "  otlphttp/a:\n    endpoint: http://h:4318\n    bearer_token: ${env:WT_TEST_TOKEN}\n    compression: nope\n".to_string(),
    ];
    for (i, exp) in cases.iter().enumerate() {
        let ty = if exp.contains("otlp/a") {
            "otlp/a"
        } else {
            "otlphttp/a"
        };
        let cfg = format!(
            "receivers: {{ otlp: {{ protocols: {{ http: {{}} }} }} }}\nexporters:\n{exp}service:\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [{ty}] }}\n"
        );
        let p = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&p, cfg).unwrap();
        let out = Command::new(binary())
            .args(["validate", "--config"])
            .arg(&p)
            .env("WT_TEST_TOKEN", TOKEN)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(
            out.status.code(),
            Some(0),
            "case {i} must be invalid: {text}"
        );
        assert!(
            !text.contains(TOKEN) && !text.contains("pa55word"),
            "case {i}: {text}"
        );
        assert!(
            text.contains("otlp"),
            "case {i} still names the component: {text}"
        );
    }
}
