//! Shared test harness: in-process OTLP destinations (HTTP and gRPC) that decode what
//! arrives and can be scripted to fail, hang or answer slowly; a gateway child process with
//! a generated config on free loopback ports; self-metrics scraping; the Python SDK sender.
#![allow(dead_code)]

pub mod capture;
pub mod gateway;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free 127.0.0.1 port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Python interpreter with the OpenTelemetry SDK (`make test` builds the venv).
pub fn python() -> String {
    if let Ok(p) = std::env::var("WATCHTOWER_PYTHON") {
        return p;
    }
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(local).exists() {
        return local.to_string();
    }
    panic!(
        "WATCHTOWER_PYTHON is not set and .venv is missing: run `make test` (it creates the venv)"
    );
}

/// A reqwest client (installs the crypto provider reqwest is built without).
pub fn client() -> reqwest::Client {
    watchtower::install_crypto_provider();
    reqwest::Client::new()
}

/// An encoded trace request with `n` spans whose span ids start at `first` (big-endian u64),
/// all in service `svc`.
pub fn trace_request(svc: &str, first: u64, n: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: [i.to_be_bytes(), i.to_be_bytes()].concat(),
            span_id: i.to_be_bytes().to_vec(),
            name: format!("span-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_000_100_000 + i,
            attributes: vec![KeyValue {
                key: "i".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i as i64)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(svc.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// [`trace_request`] with more resource attributes (string values).
pub fn trace_request_with_resource(
    svc: &str,
    first: u64,
    n: u64,
    attributes: &[(&str, &str)],
) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use prost::Message;
    let mut req = ExportTraceServiceRequest::decode(&trace_request(svc, first, n)[..])
        .expect("a request this file encoded");
    for rs in &mut req.resource_spans {
        let res = rs.resource.get_or_insert_with(Default::default);
        res.attributes
            .extend(attributes.iter().map(|(k, v)| KeyValue {
                key: (*k).into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue((*v).into())),
                }),
                ..Default::default()
            }));
    }
    req.encode_to_vec()
}

/// POSTs an OTLP/HTTP protobuf body; returns (status, retry-after header, body).
pub async fn post_protobuf(url: &str, body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    let r = client()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let ra = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (
        status,
        ra,
        r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

/// Span ids (as u64) received by a capture.
pub fn span_ids(c: &capture::Capture) -> Vec<u64> {
    let mut v: Vec<u64> = c
        .spans()
        .iter()
        .map(|(_, s)| u64::from_be_bytes(s.span_id[..8].try_into().unwrap_or([0; 8])))
        .collect();
    v.sort();
    v
}

/// Sends `request` (an HTTP/1.1 head, no body) to 127.0.0.1:`port` and returns the first
/// bytes of the answer (the status line and headers): for requests refused before their body
/// is read. Panics if nothing arrives within 5 s.
pub async fn answer_to_head(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer without a body")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
