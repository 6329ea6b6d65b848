//! End-to-end tests of test runs and the CD gate (docs/runs.md): the gateway binary runs with an
//! in-test OTLP/HTTP capture server as its destination plus the `runsummary` exporter, and
//! `test-data/generate.py` (Python from WATCHTOWER_PYTHON) produces the traffic and a
//! manifest of what it sent. Every check compares with the manifest.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- capture server ---------------------------------------------------------------------------

#[derive(Default)]
struct Capture {
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
}

fn body(headers: &HeaderMap, b: Bytes) -> Vec<u8> {
    if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&b[..]).read_to_end(&mut out);
        out
    } else {
        b.to_vec()
    }
}

async fn start_capture() -> (Arc<Capture>, u16) {
    let cap = Arc::new(Capture::default());
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |State(c): State<Arc<Capture>>, h: HeaderMap, b: Bytes| async move {
                    match ExportTraceServiceRequest::decode(&body(&h, b)[..]) {
                        Ok(r) => {
                            c.traces.lock().map(|mut v| v.push(r)).ok();
                            (axum::http::StatusCode::OK, Vec::new())
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                    }
                },
            ),
        )
        .route(
            "/v1/logs",
            axum::routing::post(
                |State(c): State<Arc<Capture>>, h: HeaderMap, b: Bytes| async move {
                    match ExportLogsServiceRequest::decode(&body(&h, b)[..]) {
                        Ok(r) => {
                            c.logs.lock().map(|mut v| v.push(r)).ok();
                            (axum::http::StatusCode::OK, Vec::new())
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                    }
                },
            ),
        )
        .route(
            "/v1/metrics",
            axum::routing::post(
                |State(c): State<Arc<Capture>>, h: HeaderMap, b: Bytes| async move {
                    match ExportMetricsServiceRequest::decode(&body(&h, b)[..]) {
                        Ok(r) => {
                            c.metrics.lock().map(|mut v| v.push(r)).ok();
                            (axum::http::StatusCode::OK, Vec::new())
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                    }
                },
            ),
        )
        .with_state(cap.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind capture");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (cap, port)
}

fn attr(r: &Option<Resource>, key: &str) -> Option<String> {
    r.as_ref()?
        .attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Per (service.namespace, test.run.id): (spans, log records, metric resources).
type Tally = BTreeMap<(Option<String>, Option<String>), (u64, u64, u64)>;

fn tally(c: &Capture) -> Tally {
    let mut t = Tally::new();
    for req in c.traces.lock().expect("lock").iter() {
        for rs in &req.resource_spans {
            let k = (
                attr(&rs.resource, "service.namespace"),
                attr(&rs.resource, "test.run.id"),
            );
            t.entry(k).or_default().0 += rs
                .scope_spans
                .iter()
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
        }
    }
    for req in c.logs.lock().expect("lock").iter() {
        for rl in &req.resource_logs {
            let k = (
                attr(&rl.resource, "service.namespace"),
                attr(&rl.resource, "test.run.id"),
            );
            t.entry(k).or_default().1 += rl
                .scope_logs
                .iter()
                .map(|s| s.log_records.len() as u64)
                .sum::<u64>();
        }
    }
    for req in c.metrics.lock().expect("lock").iter() {
        for rm in &req.resource_metrics {
            let k = (
                attr(&rm.resource, "service.namespace"),
                attr(&rm.resource, "test.run.id"),
            );
            t.entry(k).or_default().2 += 1;
        }
    }
    t
}

fn totals(t: &Tally) -> (u64, u64) {
    t.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1))
}

// ---- gateway process --------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn bin() -> String {
    std::env::var("WATCHTOWER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchtower").to_string())
}

struct Gateway {
    child: Option<Child>,
    http: u16,
    health: u16,
    config: PathBuf,
}

impl Gateway {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.health)
    }
    fn otlp(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn config(dir: &Path, capture: u16, summary_queue: &str, runs_dir: &Path) -> Gateway {
        let (http, grpc, health) = (free_port(), free_port(), free_port());
        let text = format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}
      http: {{ endpoint: "127.0.0.1:{http}" }}
exporters:
  otlphttp/capture:
    endpoint: "http://127.0.0.1:{capture}"
    compression: none
  runsummary:
    sending_queue: {summary_queue}
extensions:
  health_check: {{ endpoint: "127.0.0.1:{health}" }}
  runs: {{ max_duration: 1h, directory: "{runs}", flush_interval: 1s }}
service:
  extensions: [health_check, runs]
  telemetry: {{ metrics: {{ address: "" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp/capture, runsummary] }}
    metrics: {{ receivers: [otlp], exporters: [otlphttp/capture, runsummary] }}
    logs: {{ receivers: [otlp], exporters: [otlphttp/capture, runsummary] }}
"#,
            runs = runs_dir.display()
        );
        let config = dir.join("watchtower.yaml");
        std::fs::write(&config, text).expect("write config");
        Gateway {
            child: None,
            http,
            health,
            config,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http_get(&format!("{}/", self.url())).await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "gateway did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and wait (graceful shutdown).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("gateway did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---- generator, CLI, API ----------------------------------------------------------------------

async fn http_get(url: &str) -> reqwest::Result<reqwest::Response> {
    watchtower::install_crypto_provider();
    reqwest::get(url).await
}

fn python() -> String {
    if let Ok(p) = std::env::var("WATCHTOWER_PYTHON") {
        return p;
    }
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    assert!(
        std::path::Path::new(local).exists(),
        "WATCHTOWER_PYTHON is not set and .venv is missing: run `make test`"
    );
    local.to_string()
}

/// Runs generate.py and returns its manifest.
fn generate(
    dir: &Path,
    endpoint: &str,
    scenario: &str,
    count: u32,
    seed: u32,
    extra: &[&str],
) -> Value {
    let manifest = dir.join(format!("manifest-{scenario}-{seed}.json"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-data/generate.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            "--protocol",
            "http",
            "--endpoint",
            endpoint,
            "--rate",
            "0",
            "--error-rate",
            "0.1",
        ])
        .args([
            "--scenario",
            scenario,
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--manifest")
        .arg(&manifest)
        .args(extra)
        .output()
        .expect("run generate.py (set WATCHTOWER_PYTHON)");
    assert!(
        out.status.success(),
        "generate.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("manifest json")
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).args(args).output().expect("run cli");
    if !out.stderr.is_empty() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn get_run(gw: &Gateway, id: &str) -> Value {
    let r = http_get(&format!("{}/runs/{id}", gw.url()))
        .await
        .expect("GET run");
    assert!(r.status().is_success(), "GET /runs/{id}: {}", r.status());
    serde_json::from_str(&r.text().await.expect("body")).expect("summary json")
}

async fn post(url: String, body: Value) -> (u16, Value) {
    watchtower::install_crypto_provider();
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let code = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Polls until `f` holds (data is delivered asynchronously).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The summary's per-service counts equal the manifest's.
fn assert_summary_matches(s: &Value, m: &Value) {
    assert_eq!(u(&s["totals"]["spans"]), u(&m["spans_total"]), "spans");
    assert_eq!(
        u(&s["totals"]["log_records"]),
        u(&m["log_records_total"]),
        "log records"
    );
    assert_eq!(
        u(&s["totals"]["exceptions"]),
        u(&m["exceptions_total"]),
        "exceptions"
    );
    for svc in m["services"].as_array().expect("services") {
        let svc = svc.as_str().unwrap_or_default();
        let ss = &s["services"][svc];
        assert_eq!(
            u(&ss["spans"]),
            u(&m["spans_by_service"][svc]),
            "{svc} spans"
        );
        assert_eq!(
            u(&ss["error_spans"]),
            u(&m["error_spans_by_service"][svc]),
            "{svc} error spans"
        );
        assert_eq!(
            u(&ss["log_records"]),
            u(&m["log_records_by_service"][svc]),
            "{svc} logs"
        );
        let sev: BTreeMap<String, u64> = m["log_records_by_severity"][svc]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), u(v))).collect())
            .unwrap_or_default();
        let got: BTreeMap<String, u64> = ss["log_records_by_severity"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), u(v))).collect())
            .unwrap_or_default();
        assert_eq!(got, sev, "{svc} logs by severity");
    }
    // exceptions per (service, type) = sum of the groups
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (svc, types) in m["exceptions_by_service"]
        .as_object()
        .expect("exceptions_by_service")
    {
        for (t, n) in types.as_object().expect("types") {
            want.insert((svc.clone(), t.clone()), u(n));
        }
    }
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for g in s["exception_groups"].as_array().expect("groups") {
        let k = (
            g["service"].as_str().unwrap_or("").to_string(),
            g["type"].as_str().unwrap_or("").to_string(),
        );
        *got.entry(k).or_default() += u(&g["count"]);
        assert!(
            !g["example_trace_ids"]
                .as_array()
                .map(|a| a.is_empty())
                .unwrap_or(true)
        );
    }
    assert_eq!(got, want, "exceptions by service and type");
}

/// Posts `requests` OTLP/HTTP trace requests of `spans` spans each, concurrently; returns the
/// number of spans accepted (all must be).
async fn flood(otlp: &str, requests: usize, spans: usize) -> u64 {
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    watchtower::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for r in 0..requests {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("flood-svc".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: vec![(r % 251) as u8 + 1; 16],
                            span_id: ((r * spans + i) as u64 + 1).to_be_bytes().to_vec(),
                            name: format!("GET /flood/{i}"),
                            start_time_unix_nano: 1_000_000,
                            end_time_unix_nano: 2_000_000,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let c = client.clone();
        let url = format!("{otlp}/v1/traces");
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        let status = t.await.expect("task").expect("flood request");
        assert_eq!(
            status, 200,
            "the gateway accepts the flood (only the summary drops)"
        );
    }
    (requests * spans) as u64
}

// ---- the tests --------------------------------------------------------------------------------

const QUEUE: &str = "{ queue_size: 1000, num_consumers: 1 }";

/// Baseline in run A, new-exception in run B: B vs A blocks naming exactly the new type; A vs
/// A passes; summaries equal the manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_blocks_new_exception_type_and_passes_same_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cap, cport) = start_capture().await;
    let mut gw = Gateway::config(dir.path(), cport, QUEUE, &dir.path().join("runs"));
    gw.start().await;
    let url = gw.url();

    assert_eq!(
        cli(&[
            "run-start",
            "--url",
            &url,
            "--id",
            "A",
            "--label",
            "suite=smoke"
        ])
        .0,
        0
    );
    let ma = generate(dir.path(), &gw.otlp(), "baseline", 150, 11, &[]);
    assert_eq!(cli(&["run-end", "--url", &url, "--id", "A"]).0, 0);
    assert_eq!(cli(&["run-start", "--url", &url, "--id", "B"]).0, 0);
    let mb = generate(dir.path(), &gw.otlp(), "new-exception", 150, 12, &[]);
    assert_eq!(cli(&["run-end", "--url", &url, "--id", "B"]).0, 0);

    let sa = get_run(&gw, "A").await;
    let sb = get_run(&gw, "B").await;
    assert_eq!(sa["state"], "ended");
    assert_eq!(sa["labels"]["suite"], "smoke");
    assert_summary_matches(&sa, &ma);
    assert_summary_matches(&sb, &mb);

    let types = |m: &Value| -> BTreeSet<String> {
        m["exceptions_by_type"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let new_types: BTreeSet<String> = types(&mb).difference(&types(&ma)).cloned().collect();
    assert_eq!(
        new_types,
        BTreeSet::from(["payments.fx.CurrencyConversionError".to_string()])
    );

    let (code, out) = cli(&[
        "gate",
        "--url",
        &url,
        "--run",
        "B",
        "--baseline",
        "A",
        "--format",
        "json",
    ]);
    assert_eq!(code, 2, "B vs A must block: {out}");
    let report: Value = serde_json::from_str(&out).expect("gate json");
    assert_eq!(report["verdict"], "block");
    let named: BTreeSet<String> = report["new_exception_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        named, new_types,
        "the gate names exactly the new exception type"
    );
    let traces: BTreeSet<&str> = mb["trace_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for g in report["new_exception_groups"].as_array().expect("groups") {
        let t = g["example_trace_id"].as_str().unwrap_or("");
        assert!(
            traces.contains(t),
            "example trace {t} is one of run B's traces"
        );
    }
    let (code, md) = cli(&[
        "gate",
        "--url",
        &url,
        "--run",
        "B",
        "--baseline",
        "A",
        "--format",
        "md",
    ]);
    assert_eq!(code, 2);
    assert!(md.contains("payments.fx.CurrencyConversionError"), "{md}");
    let (code, out) = cli(&["gate", "--url", &url, "--run", "A", "--baseline", "A"]);
    assert_eq!(code, 0, "A vs A passes: {out}");
    let (code, _) = cli(&[
        "gate",
        "--url",
        &url,
        "--run",
        "B",
        "--baseline",
        "A",
        "--warn-only",
    ]);
    assert_eq!(code, 1, "--warn-only turns block into warn");
    let (code, table) = cli(&["runs", "show", "--url", &url, "B"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("CurrencyConversionError") && table.contains("payment-service"),
        "{table}"
    );
    gw.stop();
}

/// Two concurrent runs filtered by service.namespace stamp only their own data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_stamp_only_their_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, cport) = start_capture().await;
    let mut gw = Gateway::config(dir.path(), cport, QUEUE, &dir.path().join("runs"));
    gw.start().await;
    for (id, ns) in [("R1", "qa1"), ("R2", "qa2")] {
        let (code, body) = post(
            format!("{}/runs", gw.url()),
            serde_json::json!({ "id": id, "match": { "service.namespace": ns } }),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["state"], "open");
    }
    let (code, _) = post(
        format!("{}/runs", gw.url()),
        serde_json::json!({ "id": "R1" }),
    )
    .await;
    assert_eq!(code, 409, "duplicate run id");
    let otlp = gw.otlp();
    let d = dir.path().to_path_buf();
    let gens: Vec<_> = [("qa1", 21), ("qa2", 22), ("qa3", 23)]
        .into_iter()
        .map(|(ns, seed)| {
            let (otlp, d) = (otlp.clone(), d.clone());
            std::thread::spawn(move || {
                (
                    ns,
                    generate(
                        &d,
                        &otlp,
                        "baseline",
                        60,
                        seed,
                        &["--service-namespace", ns],
                    ),
                )
            })
        })
        .collect();
    let manifests: BTreeMap<&str, Value> = gens
        .into_iter()
        .map(|h| h.join().expect("generator thread"))
        .collect();
    for id in ["R1", "R2"] {
        let (code, _) = post(format!("{}/runs/{id}/end", gw.url()), Value::Null).await;
        assert_eq!(code, 200);
    }
    let want_spans: u64 = manifests.values().map(|m| u(&m["spans_total"])).sum();
    let want_logs: u64 = manifests.values().map(|m| u(&m["log_records_total"])).sum();
    eventually("all data at the destination", || {
        totals(&tally(&cap)) == (want_spans, want_logs)
    })
    .await;
    let t = tally(&cap);
    let expected_id = |ns: &str| match ns {
        "qa1" => Some("R1".to_string()),
        "qa2" => Some("R2".to_string()),
        _ => None,
    };
    for ((ns, id), (spans, logs, _)) in &t {
        let ns = ns.clone().unwrap_or_default();
        assert_eq!(
            id,
            &expected_id(&ns),
            "namespace {ns}: {spans} spans / {logs} logs carry {id:?}"
        );
    }
    for (ns, m) in &manifests {
        let (spans, logs, metrics) = t
            .get(&(Some(ns.to_string()), expected_id(ns)))
            .copied()
            .unwrap_or_default();
        assert_eq!(spans, u(&m["spans_total"]), "{ns} spans");
        assert_eq!(logs, u(&m["log_records_total"]), "{ns} logs");
        assert!(metrics > 0, "{ns} metrics");
    }
    for (id, ns) in [("R1", "qa1"), ("R2", "qa2")] {
        assert_summary_matches(&get_run(&gw, id).await, &manifests[ns]);
    }
    let list = http_get(&format!("{}/runs", gw.url())).await.expect("list");
    let list: Value = serde_json::from_str(&list.text().await.expect("body")).expect("json");
    let ids: BTreeSet<&str> = list["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["R1", "R2"]),
        "no run appears for the unmatched namespace"
    );
    gw.stop();
}

/// The runsummary queue overflows: the other destination loses nothing and the summary
/// reports exactly what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_flood_drops_only_in_summary_and_reports_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cap, cport) = start_capture().await;
    let tiny = "{ queue_size: 1, max_bytes: 16KiB, num_consumers: 1, full_policy: drop_newest }";
    let mut gw = Gateway::config(dir.path(), cport, tiny, &dir.path().join("runs"));
    gw.start().await;
    let url = gw.url();
    assert_eq!(cli(&["run-start", "--url", &url, "--id", "flood"]).0, 0);
    // the generator, and at the same time a burst of large requests (each bigger than the
    // summary queue's byte budget, so some are certainly dropped there)
    let otlp = gw.otlp();
    let d = dir.path().to_path_buf();
    let gen_thread = std::thread::spawn(move || generate(&d, &otlp, "baseline", 300, 31, &[]));
    let burst = flood(&gw.otlp(), 20, 1000).await;
    let m = gen_thread.join().expect("generator thread");
    assert_eq!(cli(&["run-end", "--url", &url, "--id", "flood"]).0, 0);
    let (spans, logs) = (u(&m["spans_total"]) + burst, u(&m["log_records_total"]));
    eventually("all data at the destination", || {
        totals(&tally(&cap)) == (spans, logs)
    })
    .await;
    let t = tally(&cap);
    assert_eq!(
        t.keys().map(|k| k.1.clone()).collect::<BTreeSet<_>>(),
        BTreeSet::from([Some("flood".to_string())])
    );
    let s = get_run(&gw, "flood").await;
    assert_eq!(s["complete"], false);
    assert!(
        u(&s["dropped"]["spans"]) > 0,
        "the flood overflowed the summary queue: {}",
        s["dropped"]
    );
    assert_eq!(
        u(&s["totals"]["spans"]) + u(&s["dropped"]["spans"]),
        spans,
        "summarized + dropped spans"
    );
    assert_eq!(
        u(&s["totals"]["log_records"]) + u(&s["dropped"]["log_records"]),
        logs,
        "summarized + dropped logs"
    );
    // the gate says the summary is incomplete: at least a warning, never a silent pass
    let (code, out) = cli(&[
        "gate",
        "--url",
        &url,
        "--run",
        "flood",
        "--baseline",
        "flood",
    ]);
    assert_eq!(code, 1, "{out}");
    gw.stop();
}

/// Restart (SIGTERM, start again) during a run with a runs directory: the run stays open,
/// its summary keeps what it had and continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_during_run_keeps_run_and_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs_dir = dir.path().join("storage/runs");
    let (cap, cport) = start_capture().await;
    let mut gw = Gateway::config(dir.path(), cport, QUEUE, &runs_dir);
    gw.start().await;
    let url = gw.url();
    assert_eq!(
        cli(&[
            "run-start",
            "--url",
            &url,
            "--id",
            "long",
            "--label",
            "build=42"
        ])
        .0,
        0
    );
    let m1 = generate(dir.path(), &gw.otlp(), "baseline", 80, 41, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let s = get_run(&gw, "long").await;
        if u(&s["totals"]["spans"]) == u(&m1["spans_total"])
            && u(&s["totals"]["log_records"]) == u(&m1["log_records_total"])
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "summary did not reach the manifest's counts: {}",
            s["totals"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    gw.stop();
    assert!(
        std::fs::read_dir(&runs_dir).expect("runs dir").count() > 0,
        "summary saved"
    );

    gw.start().await;
    let after = get_run(&gw, "long").await;
    assert_eq!(
        after["state"], "open",
        "the run is still open after the restart"
    );
    assert_eq!(after["labels"]["build"], "42");
    assert_eq!(after["totals"], before["totals"], "the summary survived");
    // a clean stop (SIGTERM, final save) lost nothing: the part is not marked as late
    assert!(after.get("late_joins").is_none(), "{after}");
    let (code, shown) = cli(&["runs", "show", "--url", &url, "long"]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("state open  source api"), "{shown}");
    assert!(!shown.contains("NOTE:"), "{shown}");
    // a server without the runs API (here the capture destination) is named as such
    let out = Command::new(bin())
        .args([
            "runs",
            "show",
            "--url",
            &format!("http://127.0.0.1:{cport}"),
            "long",
        ])
        .output()
        .expect("run cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("answered 404") && err.contains("no runs API there"),
        "{err}"
    );
    let m2 = generate(dir.path(), &gw.otlp(), "new-exception", 40, 42, &[]);
    assert_eq!(cli(&["run-end", "--url", &url, "--id", "long"]).0, 0);
    let s = get_run(&gw, "long").await;
    assert_eq!(
        u(&s["totals"]["spans"]),
        u(&m1["spans_total"]) + u(&m2["spans_total"])
    );
    assert_eq!(
        u(&s["totals"]["log_records"]),
        u(&m1["log_records_total"]) + u(&m2["log_records_total"])
    );
    assert_eq!(
        u(&s["totals"]["exceptions"]),
        u(&m1["exceptions_total"]) + u(&m2["exceptions_total"])
    );
    let (spans, logs) = (
        u(&m1["spans_total"]) + u(&m2["spans_total"]),
        u(&m1["log_records_total"]) + u(&m2["log_records_total"]),
    );
    eventually("all data at the destination", || {
        totals(&tally(&cap)) == (spans, logs)
    })
    .await;
    let t = tally(&cap);
    assert!(
        t.keys().all(|k| k.1.as_deref() == Some("long")),
        "stamped before and after the restart: {t:?}"
    );
    gw.stop();
}
