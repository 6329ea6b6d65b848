//! Failure handling of the remote-write sender: Prometheus down then up (retryable error
//! first, then everything lands: nothing lost), a real 400 from Prometheus (out-of-order
//! sample: permanent, reason `out_of_order`), and a stub receiver checking the wire format
//! (headers, snappy protobuf, sorted labels, splitting) and 400/429/500 classification.

mod prw_support;

use axum::Router;
use axum::body::Bytes as AxBytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, metric::Data, number_data_point,
};
use prost::Message;
use prw_support::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use watchtower::exporter::Sender;
use watchtower::exporter::prometheusremotewrite::{Config, build};
use watchtower::pipeline::payload::{Payload, Signal};
use watchtower::proto::prometheus::WriteRequest;

fn gauge_payload(name: &str, points: &[(u64, f64)], series: usize) -> Payload {
    let dps = points
        .iter()
        .flat_map(|&(t, v)| {
            (0..series).map(move |i| NumberDataPoint {
                attributes: vec![kv("series", &i.to_string())],
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            })
        })
        .collect();
    let req = request(vec![Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge { data_points: dps })),
        ..Default::default()
    }]);
    Payload::new(
        Signal::Metrics,
        Bytes::from(req.encode_to_vec()),
        points.len() as u64,
    )
}

fn sender(yaml: &str) -> Arc<dyn Sender> {
    let cfg: Config = serde_yaml::from_str(yaml).expect("config");
    build(&cfg).expect("build")
}

#[tokio::test]
async fn prometheus_down_then_up_loses_nothing() {
    let port = free_port();
    let s = sender(&format!(
        "endpoint: http://127.0.0.1:{port}/api/v1/write\ntimeout: 2s"
    ));
    let t = now_ns() - 2_000_000_000;
    let batch = gauge_payload("door.state", &[(t, 7.0)], 3);

    // Down: a retryable transport error (the generic retry layer backs off and retries).
    let err = s.send(batch.clone()).await.expect_err("prometheus is down");
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.reason, "connect");

    // Up on the same port: the same batch (as the retry layer would resend it) lands whole.
    let prom = Prometheus::start(port).await;
    s.send(batch).await.expect("send after restart");
    let r = prom.query_until("door_state", 3).await;
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| sample_value(x) == 7.0));
}

#[tokio::test]
async fn real_prometheus_400_is_permanent_with_reason() {
    let prom = Prometheus::start(0).await;
    let s = sender(&format!("endpoint: {}", prom.write_url()));
    let t = now_ns() - 10_000_000_000;
    s.send(gauge_payload("temp", &[(t, 1.0)], 1))
        .await
        .expect("first write");
    // Same series, older timestamp: Prometheus answers 400 "out of order sample".
    let err = s
        .send(gauge_payload("temp", &[(t - 5_000_000_000, 2.0)], 1))
        .await
        .expect_err("out of order");
    assert!(!err.retryable, "{err:?}");
    assert_eq!(err.reason, "out_of_order", "{err:?}");
    // A resend of identical samples (what a retry after a partial failure does) is fine.
    s.send(gauge_payload("temp", &[(t, 1.0)], 1))
        .await
        .expect("idempotent resend");
}

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<(HeaderMap, WriteRequest)>>>,
}

/// A stub remote-write receiver answering `status` with `body` (and `Retry-After: 3`).
async fn stub(status: StatusCode, body: &'static str) -> (u16, Seen) {
    let seen = Seen::default();
    let s2 = seen.clone();
    let app = Router::new().route(
        "/api/v1/push",
        post(move |headers: HeaderMap, raw: AxBytes| {
            let s2 = s2.clone();
            async move {
                let decoded = snap::raw::Decoder::new()
                    .decompress_vec(&raw)
                    .ok()
                    .and_then(|b| WriteRequest::decode(b.as_slice()).ok());
                let Some(wr) = decoded else {
                    return (
                        StatusCode::IM_A_TEAPOT,
                        [("retry-after", "3")],
                        "undecodable",
                    );
                };
                s2.requests.lock().expect("lock").push((headers, wr));
                (status, [("retry-after", "3")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, seen)
}

#[tokio::test]
async fn wire_format_headers_and_splitting() {
    let (port, seen) = stub(StatusCode::NO_CONTENT, "").await;
    let s = sender(&format!(
        "endpoint: http://127.0.0.1:{port}/api/v1/push\n\
         headers: {{ X-Scope-OrgID: tenant-a, Content-Type: text/plain }}\n\
         basic_auth: {{ username: u, password: p }}\n\
         external_labels: {{ cluster: c1 }}\n\
         max_batch_size_bytes: 1500"
    ));
    let t = now_ns();
    let ok = s
        .send(gauge_payload("g", &[(t, 1.0)], 40))
        .await
        .expect("send");
    assert!(ok.dropped.is_empty());
    let reqs = seen.requests.lock().expect("lock").clone();
    assert!(reqs.len() > 1, "expected a split, got {}", reqs.len());
    let mut series = 0;
    for (h, wr) in &reqs {
        assert_eq!(h["content-encoding"], "snappy");
        assert_eq!(h["content-type"], "application/x-protobuf");
        assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
        assert!(
            h["user-agent"]
                .to_str()
                .unwrap_or("")
                .starts_with("watchtower/")
        );
        assert_eq!(h["x-scope-orgid"], "tenant-a");
        assert_eq!(h["authorization"], "Basic dTpw");
        assert!(wr.encoded_len() <= 1500);
        for ts in &wr.timeseries {
            assert!(ts.labels.windows(2).all(|w| w[0].name < w[1].name));
            assert!(
                ts.labels
                    .iter()
                    .any(|l| l.name == "cluster" && l.value == "c1")
            );
        }
        series += wr
            .timeseries
            .iter()
            .filter(|ts| ts.labels.iter().any(|l| l.value == "g"))
            .count();
    }
    assert_eq!(series, 40);
}

#[tokio::test]
async fn status_classification() {
    let t = now_ns();
    let cases: [(StatusCode, &'static str, bool, &str); 5] = [
        (
            StatusCode::BAD_REQUEST,
            "err-mimir-sample-out-of-order: sample too late",
            false,
            "out_of_order",
        ),
        (
            StatusCode::BAD_REQUEST,
            "duplicate sample for timestamp",
            false,
            "duplicate_sample",
        ),
        (
            StatusCode::BAD_REQUEST,
            "err-mimir-sample-timestamp-too-old",
            false,
            "too_old",
        ),
        (StatusCode::TOO_MANY_REQUESTS, "slow down", true, "http_429"),
        (StatusCode::INTERNAL_SERVER_ERROR, "boom", true, "http_500"),
    ];
    for (status, body, retryable, reason) in cases {
        let (port, _) = stub(status, body).await;
        let s = sender(&format!("endpoint: http://127.0.0.1:{port}/api/v1/push"));
        let err = s
            .send(gauge_payload("g", &[(t, 1.0)], 1))
            .await
            .expect_err("error status");
        assert_eq!(
            (err.retryable, err.reason.as_str()),
            (retryable, reason),
            "{body}: {err:?}"
        );
        assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    }
    // Bad OTLP bytes: permanent, never retried.
    let (port, _) = stub(StatusCode::OK, "").await;
    let s = sender(&format!("endpoint: http://127.0.0.1:{port}/api/v1/push"));
    let err = s
        .send(Payload::new(
            Signal::Metrics,
            Bytes::from_static(b"\xff\xff\xff"),
            1,
        ))
        .await
        .expect_err("garbage");
    assert_eq!((err.retryable, err.reason.as_str()), (false, "decode"));
}
