//! The `loki` exporter's Sender against the Loki double: delivery, tenant header, Loki's
//! answers mapped to retryable / permanent errors with reasons (429 then 200 loses nothing;
//! a 400 out-of-order is permanent with reason `out_of_order`).

mod loki_double;

use bytes::Bytes;
use loki_double::LokiDouble;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::time::Duration;
use watchtower::exporter::Sender;
use watchtower::exporter::loki::{Config, build};
use watchtower::pipeline::payload::{Payload, Signal};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn request(service: &str, extra: Vec<KeyValue>, lines: &[(&str, u64)]) -> ExportLogsServiceRequest {
    let mut attrs = vec![kv("service.name", service)];
    attrs.extend(extra);
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: attrs,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: lines
                    .iter()
                    .map(|(l, t)| LogRecord {
                        time_unix_nano: *t,
                        body: Some(AnyValue {
                            value: Some(Value::StringValue(l.to_string())),
                        }),
                        attributes: vec![kv("user.id", "u1")],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn payload(reqs: &[ExportLogsServiceRequest]) -> Payload {
    let mut b = Vec::new();
    let mut n = 0;
    for r in reqs {
        b.extend(r.encode_to_vec());
        n += r
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum::<usize>();
    }
    Payload::new(Signal::Logs, Bytes::from(b), n as u64)
}

fn sender(yaml: &str) -> std::sync::Arc<dyn Sender> {
    let cfg: Config = serde_yaml::from_str(yaml).expect("config");
    build(&cfg).expect("build")
}

#[tokio::test]
async fn concatenated_batches_arrive_with_labels_metadata_and_tenant() {
    let loki = LokiDouble::start().await;
    let s = sender(&format!(
        "endpoint: {}\nheaders: {{ X-Scope-OrgID: qa }}",
        loki.url()
    ));
    let t = now_ns();
    let p = payload(&[
        request(
            "a",
            vec![kv("k8s.pod.name", "p1")],
            &[("a2", t + 2), ("a1", t + 1)],
        ),
        request("b", vec![], &[("b1", t)]),
    ]);
    s.send(p).await.expect("accepted");
    let stored = loki.stored();
    assert_eq!(stored.len(), 3);
    let lines: Vec<&str> = stored.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, vec!["a1", "a2", "b1"]);
    assert_eq!(
        stored[0].selector,
        r#"{k8s_pod_name="p1", service_name="a"}"#
    );
    assert_eq!(stored[0].metadata["user_id"], "u1");
    assert!(stored.iter().all(|e| e.tenant.as_deref() == Some("qa")));
}

#[tokio::test]
async fn throttled_429_is_retryable_with_retry_after_then_nothing_lost() {
    let loki = LokiDouble::start().await;
    loki.script(
        429,
        Some("1"),
        "Ingestion rate limit exceeded for user qa (limit: 100 bytes/sec)",
    );
    let s = sender(&format!("endpoint: {}", loki.url()));
    let t = now_ns();
    let p = payload(&[request("svc", vec![], &[("one", t), ("two", t + 1)])]);
    let err = s.send(p.clone()).await.expect_err("429 first");
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.reason, "http_429");
    assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
    assert!(loki.stored().is_empty());
    s.send(p).await.expect("second attempt accepted");
    let lines: Vec<String> = loki.stored().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["one", "two"]);
    assert_eq!(loki.requests(), 2);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let loki = LokiDouble::start().await;
    loki.script(500, None, "internal");
    loki.script(503, None, "unavailable");
    let s = sender(&format!("endpoint: {}", loki.url()));
    let p = payload(&[request("svc", vec![], &[("x", now_ns())])]);
    for code in ["http_500", "http_503"] {
        let e = s.send(p.clone()).await.expect_err("5xx");
        assert!(e.retryable);
        assert_eq!(e.reason, code);
    }
    s.send(p).await.expect("then ok");
    assert_eq!(loki.stored().len(), 1);
}

#[tokio::test]
async fn out_of_order_400_is_permanent_with_reason() {
    let loki = LokiDouble::start().await;
    let s = sender(&format!("endpoint: {}", loki.url()));
    let t = now_ns();
    s.send(payload(&[request("svc", vec![], &[("new", t)])]))
        .await
        .expect("first");
    let e = s
        .send(payload(&[request(
            "svc",
            vec![],
            &[("old", t - 3_600_000_000_000 * 2)],
        )]))
        .await
        .expect_err("older entry refused");
    assert!(!e.retryable, "{e:?}");
    assert_eq!(e.reason, "out_of_order");
    assert!(e.message.contains("entry out of order"), "{}", e.message);
    assert_eq!(loki.stored().len(), 1);
}

#[tokio::test]
async fn scripted_loki_400s_map_to_reasons() {
    let loki = LokiDouble::start().await;
    let cases = [
        (
            "entry for stream '{a=\"b\"}' has timestamp too old: 2020-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T00:00:00Z",
            "too_old",
        ),
        (
            "entry too far behind, entry timestamp is: 2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T01:00:00Z",
            "too_far_behind",
        ),
        (
            "Max entry size '262144' bytes exceeded for stream '{a=\"b\"}' while adding an entry with length '300000' bytes",
            "line_too_long",
        ),
    ];
    for (body, _) in &cases {
        loki.script(400, None, body);
    }
    let s = sender(&format!("endpoint: {}", loki.url()));
    let p = payload(&[request("svc", vec![], &[("x", now_ns())])]);
    for (_, reason) in cases {
        let e = s.send(p.clone()).await.expect_err("400");
        assert!(!e.retryable);
        assert_eq!(e.reason, reason);
    }
}

#[tokio::test]
async fn line_too_long_and_too_many_labels_are_refused_by_the_double() {
    let loki = LokiDouble::start().await;
    let s = sender(&format!("endpoint: {}", loki.url()));
    let long = "y".repeat(loki_double::MAX_LINE + 1);
    let e = s
        .send(payload(&[request(
            "svc",
            vec![],
            &[(long.as_str(), now_ns())],
        )]))
        .await
        .expect_err("too long");
    assert_eq!((e.retryable, e.reason.as_str()), (false, "line_too_long"));

    let names: Vec<String> = (0..19).map(|i| format!("attr.{i}")).collect();
    let s = sender(&format!(
        "endpoint: {}\nindex_labels: [{}]",
        loki.url(),
        names.join(", ")
    ));
    let attrs = names.iter().map(|n| kv(n, "v")).collect();
    let e = s
        .send(payload(&[request("svc", attrs, &[("x", now_ns())])]))
        .await
        .expect_err("too many labels");
    assert_eq!((e.retryable, e.reason.as_str()), (false, "too_many_labels"));
}

#[tokio::test]
async fn json_format_and_basic_auth() {
    let loki = LokiDouble::start().await;
    let s = sender(&format!(
        "endpoint: {}\nformat: json\nbasic_auth: {{ username: u, password: p }}",
        loki.url()
    ));
    s.send(payload(&[request("svc", vec![], &[("hello", now_ns())])]))
        .await
        .expect("ok");
    let st = loki.stored();
    assert_eq!(st[0].selector, r#"{exporter="OTLP", job="svc"}"#);
    assert_eq!(
        st[0].line,
        r#"{"body":"hello","attributes":{"user.id":"u1"},"resources":{"service.name":"svc"}}"#
    );
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let s = sender(&format!(
        "endpoint: http://{addr}/loki/api/v1/push\ntimeout: 2s"
    ));
    let e = s
        .send(payload(&[request("svc", vec![], &[("x", now_ns())])]))
        .await
        .expect_err("refused");
    assert!(e.retryable);
}

#[test]
fn double_parses_what_the_translator_writes() {
    let pairs = loki_double::parse_selector(r#"{a="x\"y\\z\n", b="2"}"#).unwrap();
    assert_eq!(
        pairs,
        vec![("a".into(), "x\"y\\z\n".into()), ("b".into(), "2".into())]
    );
    assert!(loki_double::parse_selector("{a=b}").is_err());
}
