//! The `otlp` receiver answers a refusal alike on both transports, from one table: the HTTP
//! status with a `google.rpc.Status` body (and `Retry-After` when retryable), the gRPC code
//! (with `RetryInfo` when retryable), and one count per refused request under its reason.
//! Covers the kinds the other suites do not reach on the wire: a signal without a pipeline,
//! a gRPC message over `max_recv_msg_size_mib` sent uncompressed, and a gRPC message that does
//! not fit the admission budget.

mod support;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use support::capture::Capture;
use support::gateway::Gateway;
use support::{client, trace_request};
use watchtower::pipeline::grpc::{RpcStatus, retry_delay};

/// A gateway whose only pipeline takes traces; `receiver_extra` is indented under
/// `receivers.otlp` (e.g. its `admission` section).
async fn traces_only(dest: &Capture, receiver_extra: &str) -> Gateway {
    Gateway::start(
        &format!(
            "{receiver_extra}exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        "  pipelines:\n    traces: { receivers: [otlp], processors: [], exporters: [otlphttp] }\n",
    )
    .await
}

fn logs_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("hello".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn refused(gw: &Gateway, transport: &str, reason: &str) -> f64 {
    gw.metric(
        "watchtower_receiver_refused_requests_total",
        &[
            &format!("transport=\"{transport}\""),
            &format!("reason=\"{reason}\""),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_without_a_pipeline_is_refused_alike_on_both_transports() {
    let dest = Capture::http().await;
    let gw = traces_only(&dest, "").await;
    // OTLP/HTTP protobuf: 404, google.rpc.Status NOT_FOUND, no Retry-After
    let r = client()
        .post(gw.http_url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(logs_request().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("retry-after").is_none());
    let st = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(st.code, tonic::Code::NotFound as i32);
    assert!(
        st.message.contains("no pipeline takes logs"),
        "{}",
        st.message
    );
    // OTLP/HTTP JSON: the same answer in JSON
    let r = client()
        .post(gw.http_url("/v1/logs"))
        .header("content-type", "application/json")
        .body(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["code"], tonic::Code::NotFound as i32, "{v}");
    // OTLP/gRPC: UNIMPLEMENTED without RetryInfo
    let mut c = LogsServiceClient::connect(gw.grpc_url()).await.unwrap();
    let err = c.export(logs_request()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    assert_eq!(retry_delay(&err), None);
    assert!(err.message().contains("no pipeline takes logs"), "{err:?}");
    // one count per request and transport, and the refused log records
    assert_eq!(refused(&gw, "http", "no_pipeline").await, 2.0);
    assert_eq!(refused(&gw, "grpc", "no_pipeline").await, 1.0);
    for transport in ["http", "grpc"] {
        let items = gw
            .metric(
                "otelcol_receiver_refused_log_records_total",
                &[&format!("transport=\"{transport}\"")],
            )
            .await;
        assert!(items >= 1.0, "{transport}: {items}");
    }
    // traces still pass
    let r = client()
        .post(gw.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("svc", 1, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncompressed_grpc_message_over_the_limit_is_too_large_and_not_retryable() {
    let dest = Capture::http().await;
    let gw = traces_only(&dest, "").await;
    // 5 MiB, over the default max_recv_msg_size_mib of 4
    let mut big = ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap();
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(5 << 20);
    let mut c = TraceServiceClient::connect(gw.grpc_url())
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let err = c.export(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        retry_delay(&err),
        None,
        "no RetryInfo: the client must not retry"
    );
    assert!(
        err.message()
            .contains("request larger than max_recv_msg_size_mib (4194304 bytes)"),
        "{err:?}"
    );
    assert_eq!(refused(&gw, "grpc", "too_large").await, 1.0);
    // the connection and the receiver still serve a good request
    c.export(ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap())
        .await
        .unwrap();
    assert!(
        support::wait_until(std::time::Duration::from_secs(5), || dest.span_count() == 1).await,
        "the good span arrives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_message_over_the_admission_budget_is_retryable_with_retry_info() {
    let dest = Capture::http().await;
    let gw = traces_only(
        &dest,
        "    admission: { request_limit_mib: 4, waiting_limit_mib: 0 }\n",
    )
    .await;
    // a half-sent message announcing 3 MiB holds 3 MiB of the 4 MiB budget
    let port: u16 = gw.grpc_url().rsplit(':').next().unwrap().parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::post(format!(
        "http://127.0.0.1:{port}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (_resp, mut held) = send
        .ready()
        .await
        .unwrap()
        .send_request(req, false)
        .unwrap();
    let mut part = vec![0u8];
    part.extend_from_slice(&(3u32 << 20).to_be_bytes());
    part.extend_from_slice(&[0x0a; 1024]);
    held.send_data(bytes::Bytes::from(part), false).unwrap();
    // the held charge is in place before the big message is sent: sent earlier, the big
    // message could hold its 2 MiB first and the held stream be the one refused
    let mut charged = false;
    for _ in 0..100 {
        if gw
            .metric("watchtower_receiver_admission_in_flight_bytes", &[])
            .await
            >= (3 << 20) as f64
        {
            charged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(charged, "the held message's 3 MiB were never charged");
    // 2 MiB: within max_recv_msg_size_mib, beyond the 1 MiB left
    let mut big = ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap();
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 << 20);
    let mut c = TraceServiceClient::connect(gw.grpc_url()).await.unwrap();
    let mut refusal = None;
    // the held stream's prefix reaches the gateway asynchronously
    for _ in 0..50 {
        match c.export(big.clone()).await {
            Err(e) => {
                refusal = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let err = refusal.expect("refused while the budget is held");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(retry_delay(&err), Some(std::time::Duration::from_secs(1)));
    assert!(err.message().contains("request_limit_mib 4"), "{err:?}");
    assert_eq!(refused(&gw, "grpc", "admission").await, 1.0);
    // the held charge is released with its stream: the same message fits again
    drop(held);
    conn.abort();
    let mut accepted = false;
    for _ in 0..50 {
        if c.export(big.clone()).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(accepted, "accepted once the budget is free");
}
