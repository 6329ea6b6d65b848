//! The OpenTelemetry Node.js SDK as a real client: its OTLP/HTTP JSON exporters for traces,
//! metrics and logs (and, for comparison, its protobuf and gRPC exporters) send known items
//! through the gateway; every item arrives, doubles bit for bit (JavaScript writes shortest
//! round-trip doubles, whole ones of 2^63 and more as integers). `make test` installs the SDK
//! (tests/node/package-lock.json) into tests/node/node_modules.

mod support;

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use std::time::Duration;
use support::capture::Capture;
use support::gateway::{Gateway, pipelines};
use support::wait_until;

#[derive(serde::Deserialize, Debug)]
struct Sent {
    spans: Vec<SentSpan>,
    points: Vec<SentPoint>,
    logs: Vec<SentLog>,
}
#[derive(serde::Deserialize, Debug)]
struct SentSpan {
    name: String,
    trace_id: String,
    span_id: String,
    kind: i32,
    d: f64,
    i: i64,
}
#[derive(serde::Deserialize, Debug)]
struct SentPoint {
    name: String,
    series: i64,
    value: f64,
}
#[derive(serde::Deserialize, Debug)]
struct SentLog {
    body: String,
    d: f64,
    severity: i32,
}

fn node_send(protocol: &str, endpoint: &str, tag: &str) -> Sent {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    assert!(
        std::path::Path::new(&format!("{dir}/node_modules/@opentelemetry")).exists(),
        "the Node.js SDK is not installed: run `make test` (it runs `npm ci` in tests/node)"
    );
    let out = std::process::Command::new("node")
        .arg(format!("{dir}/otlp_send.mjs"))
        .args([protocol, endpoint, tag])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "otlp_send.mjs {protocol} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad otlp_send output {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn double_bits(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::DoubleValue(d)) => Some(d.to_bits()),
        _ => None,
    }
}

/// (metric name, series attribute, value bits) of every number point under service `tag`.
fn points(dest: &Capture, tag: &str) -> Vec<(String, i64, u64)> {
    let rec = dest.state.rec.lock().unwrap();
    let mut points = Vec::new();
    for req in &rec.metrics {
        for rm in &req.resource_metrics {
            let svc = rm
                .resource
                .as_ref()
                .and_then(|r| attr(&r.attributes, "service.name"));
            if svc != Some(&Value::StringValue(tag.to_string())) {
                continue;
            }
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let dps = match &m.data {
                    Some(Data::Gauge(g)) => &g.data_points,
                    Some(Data::Sum(s)) => &s.data_points,
                    other => panic!("{tag}: unexpected {other:?}"),
                };
                for dp in dps {
                    let series = match attr(&dp.attributes, "series") {
                        Some(Value::IntValue(n)) => *n,
                        other => panic!("{tag}: series {other:?}"),
                    };
                    let value = match dp.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        other => panic!("{tag}: {} value {other:?}", m.name),
                    };
                    points.push((m.name.clone(), series, value.to_bits()));
                }
            }
        }
    }
    points
}

/// Every sent item arrived exactly once under service `tag`, with the sent values.
fn check(dest: &Capture, sent: &Sent, tag: &str) {
    let spans: Vec<_> = dest.spans().into_iter().filter(|(s, _)| s == tag).collect();
    assert_eq!(spans.len(), sent.spans.len(), "{tag}: span count");
    for s in &sent.spans {
        let (_, got) = spans
            .iter()
            .find(|(_, sp)| hex::encode(&sp.span_id) == s.span_id)
            .unwrap_or_else(|| panic!("{tag}: span {} missing", s.name));
        assert_eq!(
            (got.name.as_str(), hex::encode(&got.trace_id), got.kind),
            (s.name.as_str(), s.trace_id.clone(), s.kind),
            "{tag}"
        );
        assert_eq!(
            double_bits(attr(&got.attributes, "d")),
            Some(s.d.to_bits()),
            "{tag}: {} attribute d, sent {:?}, got {:?}",
            s.name,
            s.d,
            attr(&got.attributes, "d")
        );
        assert_eq!(attr(&got.attributes, "i"), Some(&Value::IntValue(s.i)));
        assert_eq!(
            double_bits(attr(&got.events[0].attributes, "ed")),
            Some(s.d.to_bits()),
            "{tag}: event attribute"
        );
    }

    let logs: Vec<_> = dest.logs().into_iter().filter(|(s, _)| s == tag).collect();
    assert_eq!(logs.len(), sent.logs.len(), "{tag}: log count");
    for l in &sent.logs {
        let (_, got) = logs
            .iter()
            .find(|(_, r)| {
                r.body.as_ref().and_then(|b| b.value.as_ref())
                    == Some(&Value::StringValue(l.body.clone()))
            })
            .unwrap_or_else(|| panic!("{tag}: log {} missing", l.body));
        assert_eq!(got.severity_number, l.severity, "{tag}");
        assert_eq!(
            double_bits(attr(&got.attributes, "d")),
            Some(l.d.to_bits()),
            "{tag}: {} attribute d",
            l.body
        );
    }

    let points = points(dest, tag);
    assert_eq!(points.len(), sent.points.len(), "{tag}: point count");
    for p in &sent.points {
        assert!(
            points.contains(&(p.name.clone(), p.series, p.value.to_bits())),
            "{tag}: point {} series {} = {:?} missing",
            p.name,
            p.series,
            p.value
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_json_proto_and_grpc_exporters_arrive_item_by_item() {
    let dest = Capture::http().await;
    let gw = Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        &pipelines("", "otlphttp"),
    )
    .await;
    let base = gw.http_url("");
    let grpc = gw.grpc_url();
    for (protocol, endpoint) in [("json", &base), ("proto", &base), ("grpc", &grpc)] {
        let tag = format!("node-{protocol}");
        let ep = endpoint.clone();
        let t = tag.clone();
        let sent = tokio::task::spawn_blocking(move || node_send(protocol, &ep, &t))
            .await
            .unwrap();
        assert!(sent.spans.len() >= 20 && sent.points.len() >= 40);
        let total = sent.spans.len() + sent.logs.len() + sent.points.len();
        assert!(
            wait_until(Duration::from_secs(10), || {
                dest.spans().iter().filter(|(s, _)| *s == tag).count()
                    + dest.logs().iter().filter(|(s, _)| *s == tag).count()
                    + points(&dest, &tag).len()
                    >= total
            })
            .await,
            "{tag}: items arrive"
        );
        check(&dest, &sent, &tag);
    }
    let refused = gw
        .metric("watchtower_receiver_refused_requests_total", &[])
        .await;
    assert_eq!(refused, 0.0, "no request of the SDK was refused");
}
