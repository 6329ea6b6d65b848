//! The `routing` connector end to end: one request whose log records belong to three teams
//! (by resource attribute and by record attribute) enters the gateway once; each record must
//! reach exactly the pipelines its attributes select, unmatched ones the default pipeline, and
//! the pipeline that exports to the connector keeps its own exporter too.

mod support;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::Gateway;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str, team: Option<&str>, records: &[(&str, Option<&str>)]) -> ResourceLogs {
    let mut attrs = vec![kv("service.name", service)];
    if let Some(t) = team {
        attrs.push(kv("team", t));
    }
    ResourceLogs {
        resource: Some(Resource {
            attributes: attrs,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records
                .iter()
                .map(|(body, tenant)| LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.to_string())),
                    }),
                    attributes: tenant.map(|t| vec![kv("tenant", t)]).unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn bodies(c: &Capture) -> Vec<String> {
    let mut v: Vec<String> = c
        .logs()
        .iter()
        .filter_map(|(_, r)| match r.body.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_reach_exactly_the_pipelines_their_attributes_select() {
    let (a, b, d, all) = (
        Capture::http().await,
        Capture::http().await,
        Capture::http().await,
        Capture::http().await,
    );
    let body = format!(
        r#"connectors:
  routing:
    default_pipelines: [logs/default]
    table:
      - statement: route() where resource.attributes["team"] == "a"
        pipelines: [logs/a]
      - condition: attributes["tenant"] == "b"
        context: log
        pipelines: [logs/b]
exporters:
  otlphttp/a: {{ endpoint: "{}" }}
  otlphttp/b: {{ endpoint: "{}" }}
  otlphttp/default: {{ endpoint: "{}" }}
  otlphttp/all: {{ endpoint: "{}" }}
"#,
        a.url(),
        b.url(),
        d.url(),
        all.url()
    );
    let pipelines = "  pipelines:\n    logs/in: { receivers: [otlp], exporters: [routing, otlphttp/all] }\n    logs/a: { receivers: [routing], exporters: [otlphttp/a] }\n    logs/b: { receivers: [routing], exporters: [otlphttp/b] }\n    logs/default: { receivers: [routing], exporters: [otlphttp/default] }\n";
    let gw = Gateway::start(&body, pipelines).await;
    let req = ExportLogsServiceRequest {
        resource_logs: vec![
            // team a by resource: both records go to a, even the one tagged tenant b
            // (match_once: the first matching entry wins)
            resource("svc-a", Some("a"), &[("a1", None), ("a2", Some("b"))]),
            // no team: per record, tenant b goes to b, the rest to the default
            resource(
                "svc-x",
                None,
                &[("b1", Some("b")), ("x1", None), ("x2", Some("c"))],
            ),
        ],
    };
    let (status, _, _) =
        support::post_protobuf(&gw.http_url("/v1/logs"), req.encode_to_vec()).await;
    assert_eq!(status, 200);
    assert!(
        support::wait_until(Duration::from_secs(10), || a.logs().len() >= 2
            && !b.logs().is_empty()
            && d.logs().len() >= 2
            && all.logs().len() >= 5)
        .await,
        "a {:?} b {:?} default {:?} all {:?}",
        bodies(&a),
        bodies(&b),
        bodies(&d),
        bodies(&all)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bodies(&a), vec!["a1", "a2"]);
    assert_eq!(bodies(&b), vec!["b1"]);
    assert_eq!(bodies(&d), vec!["x1", "x2"]);
    assert_eq!(bodies(&all), vec!["a1", "a2", "b1", "x1", "x2"]);
    // records keep their resource
    assert!(d.logs().iter().all(|(svc, _)| svc == "svc-x"));
    assert_eq!(
        gw.metric(
            "otelcol_exporter_sent_log_records_total",
            &["exporter=\"otlphttp/default\""]
        )
        .await,
        2.0
    );
}

#[test]
fn routing_config_errors_name_what_is_wrong() {
    let cfg = r#"receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:4318 }
connectors:
  routing:
    table:
      - condition: severity_number > 3 and nope == 1
        context: log
        pipelines: [logs/a]
      - statement: set(name, "x")
        pipelines: [logs/missing]
exporters:
  debug: {}
service:
  pipelines:
    logs/in: { receivers: [otlp], exporters: [routing] }
    logs/a: { receivers: [otlp], exporters: [debug] }
"#;
    let text = watchtower::config::parse(cfg, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("line 8: connectors.routing.table[0]")
            && text.contains("unsupported path \"nope\""),
        "{text}"
    );
    assert!(
        text.contains("line 11: connectors.routing.table[1]")
            && text.contains("must be `route() where <condition>`"),
        "{text}"
    );
    assert!(
        text.contains("pipeline \"logs/missing\" is not defined"),
        "{text}"
    );
    assert!(
        text.contains("pipeline \"logs/a\" does not list \"routing\" in its receivers"),
        "{text}"
    );
}
