//! Bad input gets a clear error with the right status, never a panic, and never takes good
//! data down with it: the HTTP and gRPC matrices, then bad and good requests interleaved.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::io::Write;
use std::time::Duration;
use support::capture::Capture;
use support::gateway::{Gateway, pipelines};
use support::{client, span_ids, trace_request, wait_until};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post(url: &str, ct: Option<&str>, ce: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = client().post(url).body(body);
    if let Some(ct) = ct {
        r = r.header("content-type", ct);
    }
    if let Some(ce) = ce {
        r = r.header("content-encoding", ce);
    }
    let resp = r.send().await.expect("send");
    let st = resp.status().as_u16();
    (
        st,
        String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).into_owned(),
    )
}

async fn gateway() -> (Gateway, Capture) {
    let dest = Capture::http().await;
    let gw = Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\n",
            dest.url()
        ),
        &pipelines("", "otlphttp"),
    )
    .await;
    (gw, dest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_matrix() {
    let (gw, dest) = gateway().await;
    let url = gw.http_url("/v1/traces");
    let pb = Some("application/x-protobuf");
    let json = Some("application/json");

    let (st, body) = post(&url, pb, None, b"\x0a\xff\xff\xff\xff\x0f garbage".to_vec()).await;
    assert_eq!(st, 400);
    assert!(body.contains("invalid traces request"), "{body}");

    let (st, body) = post(&url, json, None, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(st, 400);
    assert!(
        body.contains("invalid JSON") && body.contains("\"code\":3"),
        "{body}"
    );

    let (st, body) = post(
        &url,
        json,
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc","name":"x"}]}]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(st, 400, "{body}");

    // Valid hex of the wrong length (found by the `json` fuzz target): the converter refuses
    // it with the JSON path of the id.
    let (st, body) = post(
        &url,
        json,
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"6b8efff79803810300000000","name":"x"}]}]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId")
            && body.contains("expected 32 hex digits"),
        "{body}"
    );

    let mut bad_id = ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap();
    bad_id.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
    let (st, body) = post(&url, pb, None, bad_id.encode_to_vec()).await;
    assert_eq!(st, 400);
    assert!(body.contains("trace_id must be 16 bytes"), "{body}");

    let (st, body) = post(&url, Some("text/plain"), None, b"hello".to_vec()).await;
    assert_eq!(st, 415);
    assert!(body.contains("unsupported Content-Type"), "{body}");
    let (st, _) = post(&url, None, None, b"hello".to_vec()).await;
    assert_eq!(st, 415);
    let (st, body) = post(&url, pb, Some("br"), trace_request("svc", 1, 1)).await;
    assert_eq!(st, 415);
    assert!(body.contains("Content-Encoding"), "{body}");

    // the harness sets max_request_body_size: 1MiB; a larger Content-Length is refused before
    // its body is read (announced here without the body: a client still writing 2 MiB may see
    // the connection closed before it reads the answer)
    let head = support::answer_to_head(
        gw.http_port,
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 2097152\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let bomb = gzip(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 1 << 20, "the bomb itself is small");
    let (st, body) = post(&url, pb, Some("gzip"), bomb).await;
    assert_eq!(st, 413, "a gzip bomb is refused on its decompressed size");
    assert!(body.contains("decompressed"), "{body}");
    let (st, body) = post(&url, pb, Some("gzip"), b"not gzip at all".to_vec()).await;
    assert_eq!(st, 400);
    assert!(body.contains("gzip"), "{body}");

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (st, body) = post(
        &gw.http_url("/v1/spans"),
        pb,
        None,
        trace_request("svc", 1, 1),
    )
    .await;
    assert_eq!(st, 404);
    assert!(body.contains("/v1/traces"), "{body}");

    // after all of that, good data still flows, in every accepted form
    assert_eq!(
        post(&url, pb, None, trace_request("svc", 7, 2)).await.0,
        200
    );
    assert_eq!(
        post(&url, pb, Some("gzip"), gzip(&trace_request("svc", 9, 2)))
            .await
            .0,
        200
    );
    let (st, body) = post(&url, pb, None, vec![]).await;
    assert_eq!((st, body.len()), (200, 0), "an empty request succeeds");
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 4).await);
    assert_eq!(span_ids(&dest), vec![7, 8, 9, 10]);
    let refused = gw
        .metric(
            "watchtower_receiver_refused_requests_total",
            &["transport=\"http\""],
        )
        .await;
    assert!(refused >= 9.0, "refusals counted: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input_matrix() {
    let (gw, dest) = gateway().await;
    let mut c = TraceServiceClient::connect(gw.grpc_url()).await.unwrap();
    // a span id of the wrong length is caught by validation
    let mut bad = ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap();
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1; 3];
    let err = c.export(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("span_id"), "{}", err.message());
    // raw garbage through the raw-bytes path
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(gw.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let err = raw
        .unary(
            tonic::Request::new(bytes::Bytes::from_static(b"\xff\xff\xff garbage")),
            path.clone(),
            watchtower::pipeline::grpc::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // larger than max_recv_msg_size_mib (4 MiB default)
    let mut big = ExportTraceServiceRequest::decode(&trace_request("svc", 1, 1)[..]).unwrap();
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(5 << 20);
    let mut c2 = TraceServiceClient::connect(gw.grpc_url())
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let err = c2.export(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    // unknown method
    raw.ready().await.unwrap();
    let err = raw
        .unary(
            tonic::Request::new(bytes::Bytes::new()),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
            ),
            watchtower::pipeline::grpc::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    // gzip-compressed good request is accepted
    let mut cz = TraceServiceClient::connect(gw.grpc_url())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    cz.export(ExportTraceServiceRequest::decode(&trace_request("svc", 3, 2)[..]).unwrap())
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 2).await);
    assert_eq!(span_ids(&dest), vec![3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_interleaved_with_good_ones_never_poison_them() {
    let (gw, dest) = gateway().await;
    let url = gw.http_url("/v1/traces");
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let st = post(
                    &url,
                    Some("application/x-protobuf"),
                    None,
                    trace_request("svc", i * 10, 10),
                )
                .await
                .0;
                (true, st)
            } else {
                // a truncated copy of a good request
                let mut b = trace_request("svc", i * 10, 10);
                b.truncate(b.len() - 3);
                (
                    false,
                    post(&url, Some("application/x-protobuf"), None, b).await.0,
                )
            }
        }));
    }
    for t in tasks {
        let (good, st) = t.await.unwrap();
        assert_eq!(st, if good { 200 } else { 400 });
    }
    assert!(
        wait_until(Duration::from_secs(5), || dest.span_count() == 300).await,
        "got {}",
        dest.span_count()
    );
    let want: Vec<u64> = (0..60u64)
        .filter(|i| i % 2 == 0)
        .flat_map(|i| i * 10..i * 10 + 10)
        .collect();
    assert_eq!(span_ids(&dest), want);
}

/// The OpenTelemetry Python SDK's OTLP/HTTP exporter pointed at the gRPC port by mistake
/// must see a failure (it reads only the HTTP status): a `200` carrying a gRPC status would
/// be taken for success and the spans dropped. Pointed at the HTTP port, the same export
/// succeeds and arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_http_exporter_on_the_grpc_port_is_told_it_failed() {
    let (gw, dest) = gateway().await;
    let script = r#"
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
with provider.get_tracer("wrong-port").start_as_current_span("op"):
    pass
result = OTLPSpanExporter(endpoint=sys.argv[1], timeout=5).export(memory.get_finished_spans())
print(result.name)
"#;
    let export = |endpoint: String| {
        let out = std::process::Command::new(support::python())
            .args(["-c", script, &endpoint])
            .output()
            .expect("run python");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(export(gw.grpc_url() + "/v1/traces"), "FAILURE");
    assert_eq!(dest.spans().len(), 0);
    assert_eq!(export(gw.http_url("/v1/traces")), "SUCCESS");
    assert!(
        wait_until(Duration::from_secs(10), || dest.spans().len() == 1).await,
        "the span sent to the HTTP port arrives"
    );
}

/// An OTLP/JSON body of 256 KiB and more is decoded off the worker thread; a client that
/// sends one whole and goes away at once (a load generator with a short timeout) must not make
/// it vanish: received whole, it is forwarded, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_received_whole_is_forwarded_when_its_client_leaves() {
    use tokio::io::AsyncWriteExt;
    let (gw, dest) = gateway().await;
    let spans: Vec<String> = (0..3000u64)
        .map(|i| {
            format!(
                r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{i:016x}","name":"left-{i}"}}"#
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    assert!(
        body.len() > 256 << 10 && body.len() < 1 << 20,
        "{}",
        body.len()
    );
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.http_port))
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(body.as_bytes()).await.expect("body");
        drop(s);
    }
    assert!(
        wait_until(Duration::from_secs(20), || dest.spans().len() == 5 * 3000).await,
        "forwarded: {} of {}",
        dest.spans().len(),
        5 * 3000
    );
}

/// An HTTP/2 request whose client resets the stream with NO_ERROR half-way through its body
/// ends without an error below the receiver; shorter than its Content-Length, it is refused,
/// never forwarded as the part that arrived (which here is a valid request by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_cut_short_of_its_content_length_is_not_forwarded() {
    let (gw, dest) = gateway().await;
    let first = trace_request("cut", 1, 5);
    let second = trace_request("cut", 100, 5);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gw.http_port))
        .await
        .expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let req = http::Request::post(gw.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-length", first.len() + second.len())
        .body(())
        .expect("request");
    let (_resp, mut stream) = client.send_request(req, false).expect("send");
    stream
        .send_data(bytes::Bytes::from(first), false)
        .expect("data");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.send_reset(h2::Reason::NO_ERROR);
    // a whole request afterwards is forwarded: the cut one never is
    let (st, _) = post(
        &gw.http_url("/v1/traces"),
        Some("application/x-protobuf"),
        None,
        trace_request("whole", 500, 3),
    )
    .await;
    assert_eq!(st, 200);
    assert!(wait_until(Duration::from_secs(10), || dest.spans().len() >= 3).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.spans().len(), 3, "only the whole request's spans");
}
