//! Compression and authentication at the edge, end to end against a gateway process:
//! every Collector content coding on OTLP/HTTP and OTLP/gRPC (encoded here with the codec
//! crates, plus the Python SDK's `deflate`), a bomb per codec, the exporters' codecs against
//! destinations that decode them, and the auth matrix (bearer token, token file rotation,
//! basic auth, mTLS, exporter credentials, the runs API), with credentials kept out of logs
//! and metrics.

mod support;

use bytes::Bytes;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::capture::Capture;
use support::{client, free_port, span_ids, trace_request, wait_until};

/// A gateway child process on free ports, with its stderr (log) kept in a file.
struct Gw {
    child: Child,
    grpc: u16,
    http: u16,
    health: u16,
    metrics: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Gw {
    /// `template` is a whole config with `@GRPC@`, `@HTTP@`, `@HEALTH@`, `@METRICS@` and
    /// `@DIR@` (a temp dir whose files the caller writes first through `prepare`).
    async fn start(template: &str, prepare: impl Fn(&std::path::Path)) -> Gw {
        for _ in 0..3 {
            let (grpc, http, health, metrics) =
                (free_port(), free_port(), free_port(), free_port());
            let dir = tempfile::tempdir().unwrap();
            prepare(dir.path());
            let cfg = template
                .replace("@GRPC@", &grpc.to_string())
                .replace("@HTTP@", &http.to_string())
                .replace("@HEALTH@", &health.to_string())
                .replace("@METRICS@", &metrics.to_string())
                .replace("@DIR@", &dir.path().display().to_string());
            let path = dir.path().join("config.yaml");
            std::fs::write(&path, &cfg).unwrap();
            let log = dir.path().join("gateway.log");
            let child = Command::new(support::gateway::binary())
                .args(["run", "--config"])
                .arg(&path)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut gw = Gw {
                child,
                grpc,
                http,
                health,
                metrics,
                dir,
                log,
            };
            if gw.wait_healthy().await {
                return gw;
            }
            eprintln!("gateway log:\n{}", gw.log_text());
        }
        panic!("gateway did not start; config:\n{template}");
    }

    async fn wait_healthy(&mut self) -> bool {
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = client()
                .get(format!("http://127.0.0.1:{}/", self.health))
                .send()
                .await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        false
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics_text(&self) -> String {
        client()
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `watchtower_receiver_refused_requests_total` for one transport and reason.
    async fn refused(&self, transport: &str, reason: &str) -> f64 {
        let needle = format!("transport=\"{transport}\",reason=\"{reason}\"");
        self.metrics_text()
            .await
            .lines()
            .filter(|l| l.starts_with("watchtower_receiver_refused_requests_total{"))
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway config: one otlp receiver (extra keys per protocol), `exporters`, `extensions`
/// (besides health_check) and the traces/metrics/logs pipelines to `exporter_ids`.
fn config(
    grpc_extra: &str,
    http_extra: &str,
    body: &str,
    exts: &str,
    exporter_ids: &str,
) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:@GRPC@\n        max_recv_msg_size_mib: 1\n{grpc_extra}      http:\n        endpoint: 127.0.0.1:@HTTP@\n        max_request_body_size: 1MiB\n{http_extra}{body}\n  health_check: {{ endpoint: 127.0.0.1:@HEALTH@ }}\nservice:\n  extensions: [health_check{exts}]\n  telemetry: {{ metrics: {{ address: 127.0.0.1:@METRICS@ }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [{exporter_ids}] }}\n    metrics: {{ receivers: [otlp], exporters: [{exporter_ids}] }}\n    logs: {{ receivers: [otlp], exporters: [{exporter_ids}] }}\n"
    )
}

/// Encodes with the codec crates directly (independent of the gateway's own codec code).
fn encode(name: &str, data: &[u8]) -> Vec<u8> {
    match name {
        "gzip" | "x-gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" | "zlib" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zstd" => zstd::stream::encode_all(data, 3).unwrap(),
        "snappy" => snap::raw::Encoder::new().compress_vec(data).unwrap(),
        "snappy-framed" | "x-snappy-framed" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.into_inner().unwrap()
        }
        "lz4" => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no encoder for {other}"),
    }
}

async fn post(
    url: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
    auth: Option<&str>,
) -> reqwest::Response {
    let mut r = client()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body);
    if let Some(e) = encoding {
        r = r.header("content-encoding", e);
    }
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send().await.unwrap()
}

/// One raw unary OTLP/gRPC trace export: `flag` is the message's compressed flag, `message`
/// already encoded. Returns (grpc-status, grpc-message, response headers).
async fn grpc_export(
    port: u16,
    encoding: Option<&str>,
    flag: u8,
    message: &[u8],
    metadata: &[(&str, &str)],
) -> (i32, String, http::HeaderMap) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut framed = vec![flag];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let mut req = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::from(framed),
    )));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() =
        http::Uri::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    let h = req.headers_mut();
    h.insert("content-type", "application/grpc".parse().unwrap());
    h.insert("te", "trailers".parse().unwrap());
    if let Some(e) = encoding {
        h.insert("grpc-encoding", e.parse().unwrap());
    }
    for (k, v) in metadata {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let resp = channel.oneshot(req).await.unwrap();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let src = if headers.contains_key("grpc-status") {
        &headers
    } else {
        &trailers
    };
    let code = src
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    let msg = src
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    (code, msg, headers)
}

const HTTP_CODECS: [(&str, &str); 9] = [
    ("gzip", "gzip"),
    ("x-gzip", "x-gzip"),
    ("deflate", "deflate"),
    ("zlib", "zlib"),
    ("zstd", "zstd"),
    ("snappy", "snappy"),
    // the Collector's `snappy` also takes the framing format (what it used to send)
    ("snappy", "snappy-framed"),
    ("x-snappy-framed", "x-snappy-framed"),
    ("lz4", "lz4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_is_accepted_on_http_and_grpc() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\", compression: none }}\nextensions:",
        dest.url()
    );
    let gw = Gw::start(&config("", "", &body, "", "otlphttp"), |_| {}).await;
    let mut expected = Vec::new();
    let mut first = 1u64;
    for (header, codec) in HTTP_CODECS {
        let req = trace_request("http-codec", first, 3);
        let r = post(
            &gw.url("/v1/traces"),
            Some(header),
            encode(codec, &req),
            None,
        )
        .await;
        assert_eq!(
            r.status(),
            200,
            "Content-Encoding {header} ({codec}): {:?}",
            r.text().await
        );
        expected.extend(first..first + 3);
        first += 10;
    }
    // gRPC: gzip, deflate (zlib), zstd, snappy (framed as grpc-go writes it, and a block)
    for (header, codec) in [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("zstd", "zstd"),
        ("snappy", "snappy-framed"),
        ("snappy", "snappy"),
    ] {
        let req = trace_request("grpc-codec", first, 3);
        let (code, msg, _) = grpc_export(gw.grpc, Some(header), 1, &encode(codec, &req), &[]).await;
        assert_eq!(code, 0, "grpc-encoding {header} ({codec}): {msg}");
        expected.extend(first..first + 3);
        first += 10;
    }
    // an uncompressed message under a grpc-encoding header (flag 0) is fine too
    let (code, _, _) =
        grpc_export(gw.grpc, Some("zstd"), 0, &trace_request("g", first, 2), &[]).await;
    assert_eq!(code, 0);
    expected.extend(first..first + 2);
    assert!(
        wait_until(Duration::from_secs(10), || dest.span_count()
            == expected.len())
        .await,
        "{} of {} spans arrived",
        dest.span_count(),
        expected.len()
    );
    assert_eq!(span_ids(&dest), expected, "every span arrives exactly once");
}

/// The gateway's peak resident set (VmHWM), KiB.
fn peak_rss_kib(gw: &Gw) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.child.id())).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bomb_in_any_codec_is_refused_without_inflating_it() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:",
        dest.url()
    );
    let gw = Gw::start(&config("", "", &body, "", "otlphttp"), |_| {}).await;
    let before = peak_rss_kib(&gw);
    // 32 MiB of zeros: far beyond both 1 MiB limits, and small once compressed (Snappy's
    // ratio tops out near 21:1, so its bombs hold 16 MiB to fit under the 1 MiB body limit);
    // each codec's bomb is made once
    let zeros = vec![0u8; 32 << 20];
    let mut made = std::collections::HashMap::<&str, Vec<u8>>::new();
    let mut bomb_for = |codec: &'static str| {
        let key = match codec {
            "x-gzip" => "gzip",
            "zlib" => "deflate",
            "x-snappy-framed" => "snappy-framed",
            c => c,
        };
        made.entry(key)
            .or_insert_with(|| {
                if key.starts_with("snappy") {
                    encode(key, &zeros[..16 << 20])
                } else {
                    encode(key, &zeros)
                }
            })
            .clone()
    };
    let mut http_bombs = 0.0;
    for (header, codec) in HTTP_CODECS {
        let bomb = bomb_for(codec);
        assert!(bomb.len() < 1 << 20, "{codec} bomb is {} bytes", bomb.len());
        let r = post(&gw.url("/v1/traces"), Some(header), bomb, None).await;
        assert_eq!(r.status(), 413, "{header} ({codec})");
        http_bombs += 1.0;
    }
    let mut grpc_bombs = 0.0;
    for (header, codec) in [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("zstd", "zstd"),
        ("snappy", "snappy-framed"),
        ("snappy", "snappy"),
    ] {
        let (code, msg, _) = grpc_export(gw.grpc, Some(header), 1, &bomb_for(codec), &[]).await;
        assert_eq!(
            code, 8,
            "grpc-encoding {header} ({codec}): RESOURCE_EXHAUSTED, got {msg}"
        );
        grpc_bombs += 1.0;
    }
    assert_eq!(gw.refused("http", "too_large").await, http_bombs);
    assert_eq!(gw.refused("grpc", "too_large").await, grpc_bombs);
    // the process never held a bomb's decoded size (32 MiB) at once: its peak RSS grew by
    // less than three quarters of that (the 1 MiB limits, decoder windows, and jemalloc's
    // per-thread arenas and dirty pages, which it returns after `dirty_decay_ms`)
    let grown = peak_rss_kib(&gw) - before;
    assert!(grown < 24 << 10, "peak RSS grew by {grown} KiB");
    assert_eq!(dest.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_codings_are_refused_counted_and_logged() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:",
        dest.url()
    );
    let gw = Gw::start(&config("", "", &body, "", "otlphttp"), |_| {}).await;
    let r = post(&gw.url("/v1/traces"), Some("br"), vec![1, 2, 3], None).await;
    assert_eq!(r.status(), 415);
    let text = r.text().await.unwrap();
    assert!(text.contains("br") && text.contains("zstd"), "{text}");
    let (code, msg, headers) = grpc_export(gw.grpc, Some("br"), 1, &[1, 2, 3], &[]).await;
    assert_eq!(code, 12, "UNIMPLEMENTED: {msg}");
    let accept = headers
        .get("grpc-accept-encoding")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        accept.contains("zstd") && accept.contains("snappy"),
        "{accept}"
    );
    // corrupt data in a supported coding is the client's fault: 400 / INVALID_ARGUMENT
    let r = post(
        &gw.url("/v1/traces"),
        Some("zstd"),
        b"not zstd".to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
    let (code, _, _) = grpc_export(gw.grpc, Some("deflate"), 1, b"not zlib", &[]).await;
    assert_eq!(code, 3);
    assert_eq!(gw.refused("http", "unsupported_encoding").await, 1.0);
    assert_eq!(gw.refused("grpc", "unsupported_encoding").await, 1.0);
    assert_eq!(gw.refused("grpc", "bad_data").await, 1.0);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = gw.log_text();
            log.matches("request refused").count() >= 4
                && log.contains("transport=\"grpc\"")
                && log.contains("unsupported_encoding")
        })
        .await,
        "refusals are logged on both transports:\n{}",
        gw.log_text()
    );
}

/// Runs tests/support/sdk_send.py with extra environment; returns the span count it sent.
fn sdk_send(proto: &str, endpoint: &str, tag: &str, env: &[(&str, &str)]) -> usize {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sdk_send.py");
    let out = Command::new(support::python())
        .args([script, proto, endpoint, tag])
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sdk_send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    sent["spans"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_compression_and_bearer_header_on_both_transports() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  bearertokenauth:\n    token: sdk-token-123",
        dest.url()
    );
    let auth = "        auth: { authenticator: bearertokenauth }\n";
    let gw = Gw::start(
        &config(auth, auth, &body, ", bearertokenauth", "otlphttp"),
        |_| {},
    )
    .await;
    let headers = "Authorization=Bearer%20sdk-token-123";
    let mut want = 0;
    // the Python gRPC exporter takes only gzip from the environment; deflate is tested on
    // gRPC with the raw client above
    let transports = [
        ("grpc", format!("http://127.0.0.1:{}", gw.grpc), "gzip"),
        ("http", format!("http://127.0.0.1:{}", gw.http), "deflate"),
    ];
    for (proto, endpoint, compression) in &transports {
        want += sdk_send(
            proto,
            endpoint,
            &format!("{compression}-{proto}"),
            &[
                ("OTEL_EXPORTER_OTLP_COMPRESSION", compression),
                ("OTEL_EXPORTER_OTLP_HEADERS", headers),
            ],
        );
        assert!(
            wait_until(Duration::from_secs(10), || dest.span_count() == want).await,
            "{proto}: {} of {want} spans",
            dest.span_count()
        );
    }
    // the same SDK without the header is refused on both transports and delivers nothing
    for (proto, endpoint, compression) in &transports {
        sdk_send(
            proto,
            endpoint,
            "anon",
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", compression)],
        );
        assert!(gw.refused(proto, "unauthenticated").await >= 1.0, "{proto}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dest.span_count(), want);
    let (log, metrics) = (gw.log_text(), gw.metrics_text().await);
    assert!(!log.contains("sdk-token-123") && !metrics.contains("sdk-token-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_send_every_codec_to_decoding_destinations() {
    let (hz, hs, hd) = (
        Capture::http().await,
        Capture::http().await,
        Capture::http().await,
    );
    let (gz, gd) = (Capture::grpc().await, Capture::grpc().await);
    // the otlp exporter's default (gzip, as the Collector's) and none
    let (gg, gn) = (Capture::grpc().await, Capture::grpc().await);
    // snappy over gRPC has no tonic destination: a second gateway decodes it
    let behind = Capture::http().await;
    let inner_body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\", compression: none }}\nextensions:",
        behind.url()
    );
    let inner = Gw::start(&config("", "", &inner_body, "", "otlphttp"), |_| {}).await;
    let body = format!(
        "exporters:\n  otlphttp/zstd: {{ endpoint: \"{}\", compression: zstd }}\n  otlphttp/snappy: {{ endpoint: \"{}\", compression: snappy }}\n  otlphttp/deflate: {{ endpoint: \"{}\", compression: deflate }}\n  otlp/zstd: {{ endpoint: \"{}\", compression: zstd, tls: {{ insecure: true }} }}\n  otlp/deflate: {{ endpoint: \"{}\", compression: deflate, tls: {{ insecure: true }} }}\n  otlp/snappy: {{ endpoint: \"127.0.0.1:{}\", compression: snappy, tls: {{ insecure: true }} }}\n  otlp/default: {{ endpoint: \"{}\", tls: {{ insecure: true }} }}\n  otlp/none: {{ endpoint: \"{}\", compression: none, tls: {{ insecure: true }} }}\nextensions:",
        hz.url(),
        hs.url(),
        hd.url(),
        gz.url(),
        gd.url(),
        inner.grpc,
        gg.url(),
        gn.url()
    );
    let gw = Gw::start(
        &config("", "", &body, "", "otlphttp/zstd, otlphttp/snappy, otlphttp/deflate, otlp/zstd, otlp/deflate, otlp/snappy, otlp/default, otlp/none"),
        |_| {},
    )
    .await;
    let r = post(
        &gw.url("/v1/traces"),
        None,
        trace_request("codecs", 1, 50),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let want: Vec<u64> = (1..=50).collect();
    for (name, c) in [
        ("otlphttp zstd", &hz),
        ("otlphttp snappy", &hs),
        ("otlphttp deflate", &hd),
        ("otlp zstd", &gz),
        ("otlp deflate", &gd),
        ("otlp snappy (through a second gateway)", &behind),
        ("otlp default", &gg),
        ("otlp none", &gn),
    ] {
        assert!(
            wait_until(Duration::from_secs(10), || c.span_count() == 50).await,
            "{name}: {} spans",
            c.span_count()
        );
        assert_eq!(span_ids(c), want, "{name}");
    }
    for (c, enc) in [(&hz, "zstd"), (&hs, "snappy"), (&hd, "deflate")] {
        assert_eq!(c.headers()[0]["content-encoding"], enc, "sent compressed");
    }
    for (c, enc) in [(&gz, "zstd"), (&gd, "deflate"), (&gg, "gzip")] {
        assert_eq!(
            c.headers()[0]["grpc-encoding"],
            enc,
            "sent compressed over gRPC"
        );
    }
    assert!(
        gn.headers()[0].get("grpc-encoding").is_none(),
        "compression: none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_matrix_on_both_transports_keeps_secrets_out_of_logs() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  bearertokenauth/in:\n    tokens: [right-token-A1, right-token-B2]",
        dest.url()
    );
    let auth = "        auth: { authenticator: bearertokenauth/in }\n";
    let gw = Gw::start(
        &config(auth, auth, &body, ", bearertokenauth/in", "otlphttp"),
        |_| {},
    )
    .await;
    let url = gw.url("/v1/traces");
    let r = post(&url, None, trace_request("a", 1, 1), None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = post(
        &url,
        None,
        trace_request("a", 2, 1),
        Some("Bearer wrong-SECRET-9"),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = post(
        &url,
        None,
        trace_request("a", 3, 1),
        Some("Bearer right-token-B2"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let m = trace_request("g", 10, 1);
    assert_eq!(grpc_export(gw.grpc, None, 0, &m, &[]).await.0, 16);
    assert_eq!(
        grpc_export(
            gw.grpc,
            None,
            0,
            &m,
            &[("authorization", "Bearer wrong-SECRET-9")]
        )
        .await
        .0,
        16
    );
    assert_eq!(
        grpc_export(
            gw.grpc,
            None,
            0,
            &m,
            &[("authorization", "Bearer right-token-A1")]
        )
        .await
        .0,
        0
    );
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 2).await);
    assert_eq!(span_ids(&dest), vec![3, 10]);
    assert_eq!(gw.refused("http", "unauthenticated").await, 2.0);
    assert_eq!(gw.refused("grpc", "unauthenticated").await, 2.0);
    let (log, metrics) = (gw.log_text(), gw.metrics_text().await);
    assert!(
        log.contains("unauthenticated"),
        "refusals are logged:\n{log}"
    );
    for secret in ["wrong-SECRET-9", "right-token-A1", "right-token-B2"] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_rotated_while_running() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  bearertokenauth:\n    filename: @DIR@/token",
        dest.url()
    );
    let auth = "        auth: { authenticator: bearertokenauth }\n";
    let gw = Gw::start(
        &config("", auth, &body, ", bearertokenauth", "otlphttp"),
        |d| {
            std::fs::write(d.join("token"), "first-token\n").unwrap();
        },
    )
    .await;
    let url = gw.url("/v1/traces");
    assert_eq!(
        post(
            &url,
            None,
            trace_request("r", 1, 1),
            Some("Bearer first-token")
        )
        .await
        .status(),
        200
    );
    let file = gw.dir.path().join("token");
    let tmp = gw.dir.path().join("token.tmp");
    std::fs::write(&tmp, "second-token\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert_eq!(
        post(
            &url,
            None,
            trace_request("r", 2, 1),
            Some("Bearer first-token")
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        post(
            &url,
            None,
            trace_request("r", 3, 1),
            Some("Bearer second-token")
        )
        .await
        .status(),
        200
    );
    // rewritten in place this time
    std::fs::write(&file, "third-token-longer\n").unwrap();
    assert_eq!(
        post(
            &url,
            None,
            trace_request("r", 4, 1),
            Some("Bearer second-token")
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        post(
            &url,
            None,
            trace_request("r", 5, 1),
            Some("Bearer third-token-longer")
        )
        .await
        .status(),
        200
    );
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 3).await);
    assert_eq!(span_ids(&dest), vec![1, 3, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_on_receivers() {
    use base64::Engine;
    let dest = Capture::http().await;
    let hash = bcrypt::hash("bcrypt-pass", 4).unwrap();
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  basicauth/server:\n    htpasswd:\n      file: @DIR@/htpasswd\n      inline: |\n        alice:plain-pass",
        dest.url()
    );
    let auth = "        auth: { authenticator: basicauth/server }\n";
    let gw = Gw::start(
        &config(auth, auth, &body, ", basicauth/server", "otlphttp"),
        |d| {
            std::fs::write(d.join("htpasswd"), format!("bob:{hash}\n")).unwrap();
        },
    )
    .await;
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let url = gw.url("/v1/traces");
    let r = post(&url, None, trace_request("b", 1, 1), None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        post(
            &url,
            None,
            trace_request("b", 2, 1),
            Some(&basic("alice", "nope"))
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        post(
            &url,
            None,
            trace_request("b", 3, 1),
            Some(&basic("alice", "plain-pass"))
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        post(
            &url,
            None,
            trace_request("b", 4, 1),
            Some(&basic("bob", "bcrypt-pass"))
        )
        .await
        .status(),
        200
    );
    let m = trace_request("g", 5, 1);
    let (code, _, _) = grpc_export(
        gw.grpc,
        None,
        0,
        &m,
        &[("authorization", &basic("bob", "x"))],
    )
    .await;
    assert_eq!(code, 16);
    let (code, _, _) = grpc_export(
        gw.grpc,
        None,
        0,
        &m,
        &[("authorization", &basic("bob", "bcrypt-pass"))],
    )
    .await;
    assert_eq!(code, 0);
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 3).await);
    assert_eq!(span_ids(&dest), vec![3, 4, 5]);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM.
fn pki(dir: &std::path::Path) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&srv_key, &ca, &ca_key)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let mut cli_params = CertificateParams::new(vec!["client".to_string()]).unwrap();
    cli_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli = cli_params.signed_by(&cli_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), srv.pem()).unwrap();
    std::fs::write(dir.join("server.key"), srv_key.serialize_pem()).unwrap();
    (
        ca.pem(),
        format!("{}{}", cli.pem(), cli_key.serialize_pem()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate() {
    watchtower::install_crypto_provider();
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:",
        dest.url()
    );
    let tls = "        tls: { cert_file: @DIR@/server.pem, key_file: @DIR@/server.key, client_ca_file: @DIR@/ca.pem }\n";
    let pems = std::sync::Mutex::new(None);
    let gw = Gw::start(&config("", tls, &body, "", "otlphttp"), |d| {
        *pems.lock().unwrap() = Some(pki(d));
    })
    .await;
    let (ca_pem, identity_pem) = pems.lock().unwrap().take().unwrap();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let url = format!("https://127.0.0.1:{}/v1/traces", gw.http);
    let anonymous = reqwest::Client::builder()
        .tls_certs_merge([ca.clone()])
        .build()
        .unwrap();
    let r = anonymous
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("m", 1, 1))
        .send()
        .await;
    assert!(
        r.is_err(),
        "no client certificate: the handshake fails, got {r:?}"
    );
    let with_cert = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .identity(reqwest::Identity::from_pem(identity_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = with_cert
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("m", 2, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 1).await);
    assert_eq!(span_ids(&dest), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_credentials_reach_the_destination() {
    let (h, g) = (Capture::http().await, Capture::grpc().await);
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\", auth: {{ authenticator: bearertokenauth/out }} }}\n  otlp: {{ endpoint: \"{}\", tls: {{ insecure: true }}, auth: {{ authenticator: basicauth/out }} }}\nextensions:\n  bearertokenauth/out:\n    scheme: Token\n    header: X-Api-Key\n    token: exporter-token-7\n  basicauth/out:\n    client_auth: {{ username: svc, password: exporter-pass-8 }}",
        h.url(),
        g.url()
    );
    let gw = Gw::start(
        &config(
            "",
            "",
            &body,
            ", bearertokenauth/out, basicauth/out",
            "otlphttp, otlp",
        ),
        |_| {},
    )
    .await;
    assert_eq!(
        post(&gw.url("/v1/traces"), None, trace_request("e", 1, 2), None)
            .await
            .status(),
        200
    );
    assert!(
        wait_until(Duration::from_secs(5), || h.span_count() == 2
            && g.span_count() == 2)
        .await
    );
    assert_eq!(h.headers()[0]["x-api-key"], "Token exporter-token-7");
    // base64("svc:exporter-pass-8")
    assert_eq!(
        g.headers()[0]["authorization"],
        "Basic c3ZjOmV4cG9ydGVyLXBhc3MtOA=="
    );
    let (log, metrics) = (gw.log_text(), gw.metrics_text().await);
    for secret in [
        "exporter-token-7",
        "exporter-pass-8",
        "c3ZjOmV4cG9ydGVyLXBhc3MtOA",
    ] {
        assert!(
            !log.contains(secret) && !metrics.contains(secret),
            "{secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_api_can_require_a_token() {
    let dest = Capture::http().await;
    let body = format!(
        "exporters:\n  otlphttp: {{ endpoint: \"{}\" }}\nextensions:\n  bearertokenauth/runs:\n    token: runs-token\n  runs:\n    auth: {{ authenticator: bearertokenauth/runs }}",
        dest.url()
    );
    let gw = Gw::start(
        &config("", "", &body, ", bearertokenauth/runs, runs", "otlphttp"),
        |_| {},
    )
    .await;
    let runs = format!("http://127.0.0.1:{}/runs", gw.health);
    let r = client().post(&runs).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(client().get(&runs).send().await.unwrap().status(), 401);
    let r = client()
        .post(&runs)
        .header("authorization", "Bearer runs-token")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = client()
        .get(&runs)
        .header("authorization", "Bearer runs-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // health itself stays open for probes
    let health = client()
        .get(format!("http://127.0.0.1:{}/", gw.health))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut buf = String::new();
    std::fs::File::open(&gw.log)
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert!(!buf.contains("runs-token"));
}

#[test]
fn auth_references_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "receivers:\n  otlp:\n    protocols:\n      http:\n        auth: { authenticator: bearertokenauth }\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            "is not defined in extensions",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      http:\n        auth: { authenticator: bearertokenauth }\nexporters:\n  debug: {}\nextensions:\n  bearertokenauth: { token: t }\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            "is not listed in service.extensions",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        auth: { authenticator: basicauth/c }\nexporters:\n  debug: {}\nextensions:\n  basicauth/c: { client_auth: { username: u, password: p } }\nservice:\n  extensions: [basicauth/c]\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            "has no htpasswd",
        ),
        // a protected runs API with peers: the peers need a credential to send
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug: {}\nextensions:\n  basicauth/s: { htpasswd: { inline: \"u:p\" } }\n  runs: { peers: [\"10.0.0.1:13133\"], auth: { authenticator: basicauth/s } }\nservice:\n  extensions: [basicauth/s, runs]\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            "extensions.runs.peer_auth (unset: auth's, sent to the peers).authenticator: authenticator \"basicauth/s\" has no client_auth",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug: {}\nextensions:\n  basicauth/s: { htpasswd: { inline: \"u:p\" } }\n  runs: { peers: [\"10.0.0.1:13133\"], auth: { authenticator: basicauth/s }, peer_auth: { authenticator: basicauth/s } }\nservice:\n  extensions: [basicauth/s, runs]\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            "extensions.runs.peer_auth.authenticator: authenticator \"basicauth/s\" has no client_auth",
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp: { endpoint: \"x:1\", compression: brotli }\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlp] }\n",
            "unknown variant `brotli`",
        ),
    ];
    for (i, (cfg, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&p, cfg).unwrap();
        let out = Command::new(support::gateway::binary())
            .args(["validate", "--config"])
            .arg(&p)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "case {i} must fail: {text}");
        assert!(text.contains(want), "case {i}: want {want:?} in {text}");
    }
}
