//! Timeouts and limits on every listener, attacked over loopback: a slowloris client
//! (headers at 1 byte/s) and a slow body are cut, idle connections are closed, the
//! connection cap refuses while health and metrics still answer (and closes the longest-idle
//! connection first), HTTP/2 `max_concurrent_streams` is applied, the Python SDK's gRPC
//! exporter rides through `max_connection_age` GOAWAYs without losing a span, malformed gRPC
//! framing answers INVALID_ARGUMENT, and `validate` names impossible ports with key and line.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::capture::Capture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use watchtower::app::App;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// An in-process gateway on ephemeral loopback ports with extra keys for the gRPC and HTTP
/// receivers and the health_check extension; traces go to `exporter` (a YAML flow mapping
/// entry such as `debug: {}`).
async fn gateway(grpc: &str, http: &str, health: &str, exporter: &str) -> App {
    let id = exporter.split(':').next().unwrap_or("debug");
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: \"127.0.0.1:0\"{grpc} }}\n      http: {{ endpoint: \"127.0.0.1:0\"{http} }}\nexporters:\n  {exporter}\nextensions:\n  health_check: {{ endpoint: \"127.0.0.1:0\"{health} }}\nservice:\n  extensions: [health_check]\n  telemetry: {{ metrics: {{ address: \"127.0.0.1:0\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [{id}] }}\n"
    );
    let cfg = watchtower::config::parse(&text, &|_| None)
        .unwrap_or_else(|e| panic!("config: {e}\n{text}"));
    App::start(cfg).await.expect("start")
}

fn http_addr(app: &App) -> SocketAddr {
    app.bound.http["otlp"]
}
fn grpc_addr(app: &App) -> SocketAddr {
    app.bound.grpc["otlp"]
}

/// Sum of the self-metric samples named `name` whose labels contain every needle.
fn metric(app: &App, name: &str, needles: &[&str]) -> f64 {
    app.metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| {
            (*k == name || k.starts_with(&format!("{name}{{")))
                && needles.iter().all(|n| k.contains(n))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Reads until the server closes the connection (EOF or reset); returns what was read, or
/// None if it is still open after `limit`.
async fn read_until_closed(
    r: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| all)
}

/// Sends a request head one byte per second; returns how long the server kept the
/// connection open.
async fn slowloris(addr: SocketAddr) -> Duration {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for b in b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let closed = read_until_closed(&mut r, Duration::from_secs(10)).await;
    writer.abort();
    assert!(
        closed.is_some(),
        "{addr}: connection still open after 10 s of slow headers"
    );
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_after_read_header_timeout_on_otlp_http_and_health() {
    let app = gateway(
        "",
        ", read_header_timeout: 1s",
        ", read_header_timeout: 1s",
        "debug: {}",
    )
    .await;
    for addr in [http_addr(&app), app.bound.health.expect("health")] {
        // a connection that sends nothing at all (idle_timeout is the default 1m)
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let start = Instant::now();
        assert!(
            read_until_closed(&mut silent, Duration::from_secs(5))
                .await
                .is_some(),
            "{addr}: a silent connection was kept open"
        );
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        let held = slowloris(addr).await;
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(4),
            "{addr}: slow headers held the connection for {held:?} (read_header_timeout 1s)"
        );
    }
    // a client sending at normal speed on the same listener is served
    let (code, _, _) = support::post_protobuf(
        &format!("http://{}/v1/traces", http_addr(&app)),
        support::trace_request("ok", 1, 1),
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_after_read_timeout_and_the_connection_closed() {
    let app = gateway("", ", read_timeout: 1s", "", "debug: {}").await;
    let s = TcpStream::connect(http_addr(&app)).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    w.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n")
        .await
        .expect("head");
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            if w.write_all(b"\x0a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let got = read_until_closed(&mut r, Duration::from_secs(6))
        .await
        .expect("connection still open 6 s into a 200-second body (read_timeout 1s)");
    writer.abort();
    let held = start.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("read_timeout"), "{text}");
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "{held:?}"
    );
    assert_eq!(
        metric(
            &app,
            "watchtower_listener_connections_closed_total",
            &["otlp/http", "body_timeout"]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "watchtower_receiver_refused_requests_total",
            &["transport=\"http\"", "reason=\"body_timeout\""]
        ),
        1.0
    );
}

/// Polls `metric` until it reaches `want` (the refusal is counted after the server notices
/// the client is gone) or 5 s pass; returns the last value.
async fn metric_reaches(app: &App, name: &str, needles: &[&str], want: f64) -> f64 {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let v = metric(app, name, needles);
        if v >= want || Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gRPC Export call whose HEADERS and the first bytes of its message (a prefix announcing
/// more) have been sent, 100 ms ago: the response future, the open request stream and the
/// task driving the connection (abort it to drop the connection).
async fn grpc_half_sent(
    addr: SocketAddr,
) -> (
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let req = http::Request::post(EXPORT_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    body.send_data(Bytes::from_static(&[0, 0, 0, 1, 0, 10]), false)
        .expect("data");
    tokio::time::sleep(Duration::from_millis(100)).await;
    (resp, body, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_mid_body_is_counted_as_cancelled_not_bad_data() {
    let app = gateway("", "", "", "debug: {}").await;
    let refused = "watchtower_receiver_refused_requests_total";
    // gRPC: HEADERS, part of the message, then RST_STREAM(CANCEL)
    let (resp, mut body, _conn) = grpc_half_sent(grpc_addr(&app)).await;
    body.send_reset(h2::Reason::CANCEL);
    drop(resp);
    let grpc = ["transport=\"grpc\"", "reason=\"client_cancelled\""];
    assert_eq!(
        metric_reaches(&app, refused, &grpc, 1.0).await,
        1.0,
        "{}",
        app.metrics.encode()
    );
    // gRPC: HEADERS, part of the message, then the connection dropped
    let (resp, body, conn) = grpc_half_sent(grpc_addr(&app)).await;
    conn.abort();
    drop((resp, body));
    assert_eq!(
        metric_reaches(&app, refused, &grpc, 2.0).await,
        2.0,
        "{}",
        app.metrics.encode()
    );
    // HTTP/1.1: a head announcing 1000 bytes, 10 of them, then the connection closed
    let mut s = TcpStream::connect(http_addr(&app)).await.expect("connect");
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n\x0a\x08abcdefgh")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    let http = ["transport=\"http\"", "reason=\"client_cancelled\""];
    assert_eq!(
        metric_reaches(&app, refused, &http, 1.0).await,
        1.0,
        "{}",
        app.metrics.encode()
    );
    // neither is bad data
    assert_eq!(metric(&app, refused, &["reason=\"bad_data\""]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_idle_timeout_http1_and_grpc() {
    let app = gateway(
        ", keepalive: { server_parameters: { max_connection_idle: 1s } }",
        ", idle_timeout: 1s",
        "",
        "debug: {}",
    )
    .await;
    // HTTP/1: one request, then nothing
    let mut s = TcpStream::connect(http_addr(&app)).await.expect("connect");
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("response");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let start = Instant::now();
    assert!(
        read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .is_some(),
        "idle HTTP/1 connection kept open"
    );
    let held = start.elapsed();
    assert!(
        held >= Duration::from_millis(800) && held < Duration::from_secs(4),
        "{held:?}"
    );

    // HTTP/2 (gRPC): a connection that never sends a request is closed (GOAWAY) after 1s
    let tcp = TcpStream::connect(grpc_addr(&app)).await.expect("connect");
    let start = Instant::now();
    let (_send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "idle gRPC connection kept open");
    let held = start.elapsed();
    assert!(
        held >= Duration::from_millis(800) && held < Duration::from_secs(4),
        "{held:?}"
    );
    assert_eq!(
        metric(
            &app,
            "watchtower_listener_connections_closed_total",
            &["otlp/http", "idle"]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "watchtower_listener_connections_closed_total",
            &["otlp/grpc", "idle"]
        ),
        1.0
    );
}

/// A connection busy with a request whose body is still coming.
async fn busy_connection(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n\x0a")
        .await
        .expect("write");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_are_refused_while_health_and_metrics_answer() {
    let app = gateway("", ", max_connections: 3", "", "debug: {}").await;
    let addr = http_addr(&app);
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(busy_connection(addr).await);
    }
    // let the server see the three requests start
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = TcpStream::connect(addr).await.expect("connect");
    let _ = refused
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await;
    let got = read_until_closed(&mut refused, Duration::from_secs(3))
        .await
        .expect("a connection over the cap was kept open");
    assert!(
        got.is_empty(),
        "served over the cap: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        metric(
            &app,
            "watchtower_listener_connections_refused_total",
            &["otlp/http"]
        ) >= 1.0
    );
    // health and metrics have their own listeners and caps
    let health = support::client()
        .get(format!("http://{}/", app.bound.health.expect("health")))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let scrape = support::client()
        .get(format!(
            "http://{}/metrics",
            app.bound.metrics.expect("metrics")
        ))
        .send()
        .await
        .expect("metrics");
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.expect("text");
    assert!(
        text.contains("watchtower_listener_connections{listener=\"otlp/http\"} 3"),
        "{text}"
    );
    // the busy connections are still being served
    for s in &mut busy {
        let mut b = [0u8; 1];
        let still_open = tokio::time::timeout(Duration::from_millis(100), s.read(&mut b))
            .await
            .is_err();
        assert!(still_open, "a busy connection was closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_longest_idle_connection_is_closed_for_a_new_one() {
    let app = gateway("", ", max_connections: 2", "", "debug: {}").await;
    let addr = http_addr(&app);
    let mut oldest = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut newer = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = TcpStream::connect(addr).await.expect("connect");
    assert!(
        read_until_closed(&mut oldest, Duration::from_secs(3))
            .await
            .is_some(),
        "the longest-idle connection was not closed"
    );
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), newer.read(&mut b))
            .await
            .is_err(),
        "the newer idle connection was closed"
    );
    // the new connection is served
    let mut third = third;
    third
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = third.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(
        metric(
            &app,
            "watchtower_listener_connections_closed_total",
            &["otlp/http", "evicted"]
        ),
        1.0
    );
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK block of a gRPC Export request, literals without indexing and without Huffman.
fn export_headers() -> Vec<u8> {
    let mut h = vec![0x83, 0x86]; // :method POST, :scheme http
    h.push(0x04); // :path, literal
    h.push(EXPORT_PATH.len() as u8);
    h.extend_from_slice(EXPORT_PATH.as_bytes());
    h.extend_from_slice(&[0x01, 1, b'a']); // :authority a
    h.extend_from_slice(&[0x0f, 0x10, 16]); // content-type (static index 31)
    h.extend_from_slice(b"application/grpc");
    h.extend_from_slice(&[0x00, 2]);
    h.extend_from_slice(b"te");
    h.push(8);
    h.extend_from_slice(b"trailers");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_max_concurrent_streams_is_applied() {
    let app = gateway(", max_concurrent_streams: 2", "", "", "debug: {}").await;
    let mut s = TcpStream::connect(grpc_addr(&app)).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    for id in [1u32, 3, 5] {
        out.extend(frame(0x1, 0x4, id, &export_headers())); // HEADERS, END_HEADERS, body open
    }
    s.write_all(&out).await.expect("write");
    let mut buf = Vec::new();
    let mut resets: Vec<(u32, u32)> = Vec::new();
    let mut max_streams_setting = None;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && !resets.iter().any(|(id, _)| *id == 5) {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            if kind == 0x3 && payload.len() == 4 {
                resets.push((
                    id,
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
                ));
            }
            if kind == 0x4 && id == 0 {
                for p in payload.chunks(6) {
                    if p.len() == 6 && u16::from_be_bytes([p[0], p[1]]) == 0x3 {
                        max_streams_setting = Some(u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
                    }
                }
            }
        }
    }
    assert_eq!(
        max_streams_setting,
        Some(2),
        "SETTINGS_MAX_CONCURRENT_STREAMS advertised"
    );
    // the third stream is refused (REFUSED_STREAM = 7); the first two are still open
    assert_eq!(resets, vec![(5, 7)], "RST_STREAM frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_keepalive_pings_and_closes_a_peer_that_does_not_answer() {
    let app = gateway(
        ", keepalive: { server_parameters: { time: 500ms, timeout: 1s } }",
        "",
        "",
        "debug: {}",
    )
    .await;
    let mut s = TcpStream::connect(grpc_addr(&app)).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    s.write_all(&out).await.expect("write");
    let start = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(6))
        .await
        .expect("a peer that never answers PINGs was kept open");
    let held = start.elapsed();
    // a PING frame (type 6, not an ACK) was among what the server sent
    let mut pinged = false;
    let mut rest = &got[..];
    while rest.len() >= 9 {
        let len = ((rest[0] as usize) << 16) | ((rest[1] as usize) << 8) | rest[2] as usize;
        if rest[3] == 0x6 && rest[4] & 0x1 == 0 {
            pinged = true;
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(pinged, "no PING sent");
    assert!(
        held >= Duration::from_millis(1200) && held < Duration::from_secs(5),
        "{held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_exporter_follows_max_connection_age_without_losing_a_span() {
    let dest = Capture::http().await;
    let app = gateway(
        ", keepalive: { server_parameters: { max_connection_age: 1s, max_connection_age_grace: 5s } }",
        "",
        "",
        &format!("otlphttp: {{ endpoint: \"{}\" }}", dest.url()),
    )
    .await;
    let endpoint = format!("http://{}", grpc_addr(&app));
    let count = 16;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::python())
            .args([
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sdk_paced.py"),
                &endpoint,
                &count.to_string(),
                "0.25",
            ])
            .output()
            .expect("run python")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "sdk_paced failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let results: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(results.len(), count, "{report}");
    assert!(results.iter().all(|r| *r == "SUCCESS"), "{report}");
    assert!(
        support::wait_until(Duration::from_secs(10), || dest.span_count() >= count).await,
        "spans at the destination: {}",
        dest.span_count()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.span_count(), count, "every span exactly once");
    let aged = metric(
        &app,
        "watchtower_listener_connections_closed_total",
        &["otlp/grpc", "max_connection_age"],
    );
    let accepted = metric(
        &app,
        "watchtower_listener_connections_accepted_total",
        &["otlp/grpc"],
    );
    assert!(aged >= 2.0, "connections closed for age: {aged}");
    assert!(
        accepted >= 3.0,
        "the client reconnected after each GOAWAY: {accepted} connections"
    );
}

/// Sends one gRPC Export request with a raw (already framed) body over h2c; returns the
/// grpc-status from the headers or trailers.
async fn grpc_status_for(addr: SocketAddr, framed: Vec<u8>, encoding: Option<&str>) -> String {
    let headers: Vec<(&str, String)> = encoding
        .map(|e| ("grpc-encoding", e.to_string()))
        .into_iter()
        .collect();
    grpc_status_with(addr, framed, &headers).await
}

/// [`grpc_status_for`] with any extra request headers (metadata). A request the server
/// refused below gRPC answers `http <status>`, or `error: ...` when the connection failed.
async fn grpc_status_with(addr: SocketAddr, framed: Vec<u8>, extra: &[(&str, String)]) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = http::Request::post(format!("http://{addr}{EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        req = req.header(*name, value);
    }
    let res = match send
        .send_request(req.body(Full::new(Bytes::from(framed))).expect("request"))
        .await
    {
        Ok(r) => r,
        Err(e) => return format!("error: {e}"),
    };
    if res.status() != 200 {
        return format!("http {}", res.status().as_u16());
    }
    if let Some(s) = res.headers().get("grpc-status") {
        return s.to_str().unwrap_or("").to_string();
    }
    let body = match res.into_body().collect().await {
        Ok(b) => b,
        Err(e) => return format!("error: {e}"),
    };
    body.trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

/// gRPC metadata up to `H2_MAX_HEADER_LIST_SIZE` (64 KiB) is accepted (a large token fits),
/// above it the request is refused by the HTTP/2 layer, never answered as exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_metadata_up_to_64_kib_is_accepted_and_more_is_refused() {
    let app = gateway("", "", "", "debug: {}").await;
    let addr = grpc_addr(&app);
    let msg = support::trace_request("metadata", 1, 1);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    for (size, accepted) in [(40 << 10, true), (100 << 10, false)] {
        let token = ("authorization", format!("Bearer {}", "t".repeat(size)));
        let status = grpc_status_with(addr, framed.clone(), &[token]).await;
        if accepted {
            assert_eq!(status, "0", "{size} bytes of metadata");
        } else {
            assert_ne!(status, "0", "{size} bytes of metadata");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_framing_answers_invalid_argument() {
    let app = gateway("", "", "", "debug: {}").await;
    let addr = grpc_addr(&app);
    let msg = support::trace_request("framing", 1, 1);
    // a well-framed request is accepted (control)
    let mut ok = vec![0u8];
    ok.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    ok.extend_from_slice(&msg);
    assert_eq!(grpc_status_for(addr, ok, None).await, "0");
    // truncated: the prefix announces more bytes than the stream carries
    let mut truncated = vec![0u8];
    truncated.extend_from_slice(&((msg.len() + 50) as u32).to_be_bytes());
    truncated.extend_from_slice(&msg);
    assert_eq!(
        grpc_status_for(addr, truncated, None).await,
        "3",
        "truncated frame"
    );
    // a header shorter than the 5-byte prefix
    assert_eq!(
        grpc_status_for(addr, vec![0, 0, 0], None).await,
        "3",
        "truncated prefix"
    );
    // compressed flag without grpc-encoding
    let mut flagged = vec![1u8];
    flagged.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    flagged.extend_from_slice(&msg);
    assert_eq!(
        grpc_status_for(addr, flagged, None).await,
        "3",
        "compressed flag without grpc-encoding"
    );
    // an undefined flag value
    let mut bad_flag = vec![2u8];
    bad_flag.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    bad_flag.extend_from_slice(&msg);
    assert_eq!(
        grpc_status_for(addr, bad_flag, Some("gzip")).await,
        "3",
        "flag 2"
    );
}

#[test]
fn validate_rejects_impossible_ports_and_addresses_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:99999\n      http:\n        endpoint: not-an-address\nexporters:\n  otlphttp:\n    endpoint: https://ingest.example:70000/receiver/v1/otlp/SECRETTOKEN\nextensions:\n  health_check:\n    endpoint: \"[::1:13133\"\nservice:\n  extensions: [health_check]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp]\n",
    )
    .expect("write");
    let out = std::process::Command::new(support::gateway::binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .expect("run validate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for want in [
        "line 5: receivers.otlp.protocols.grpc.endpoint: port 99999 is out of range",
        "line 7: receivers.otlp.protocols.http.endpoint: must be host:port",
        "line 10: exporters.otlphttp.endpoint: port 70000 is out of range",
        "line 13: extensions.health_check.endpoint: has an unclosed [",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("SECRETTOKEN"),
        "validate echoed the URL: {text}"
    );
}

/// OTLP/HTTP `max_connection_age`: a keep-alive client (as a sidecar's `otlphttp` exporter)
/// is made to reconnect once its connection is old, so it can reach replicas added by a
/// scale-up; no request is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_keep_alive_clients_reconnect_after_max_connection_age() {
    let dest = Capture::http().await;
    let app = gateway(
        "",
        ", max_connection_age: 1s",
        "",
        &format!("otlphttp: {{ endpoint: \"{}\" }}", dest.url()),
    )
    .await;
    let url = format!("http://{}/v1/traces", http_addr(&app));
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let count = 12u64;
    for i in 0..count {
        let r = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(support::trace_request("aged", i, 1))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "request {i}");
        let _ = r.bytes().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        support::wait_until(Duration::from_secs(10), || dest.span_count()
            >= count as usize)
        .await,
        "spans at the destination: {}",
        dest.span_count()
    );
    let aged = metric(
        &app,
        "watchtower_listener_connections_closed_total",
        &["otlp/http", "max_connection_age"],
    );
    let accepted = metric(
        &app,
        "watchtower_listener_connections_accepted_total",
        &["otlp/http"],
    );
    assert!(aged >= 1.0, "connections closed for age: {aged}");
    assert!(
        accepted >= 2.0,
        "the client reconnected after the close: {accepted} connections"
    );
}
