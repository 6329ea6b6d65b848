//! Test runs across replicas: three gateway processes on loopback form one tier (peers by a
//! static list, and by a DNS name with several A records), the generator's traffic is spread
//! round-robin over them by an in-test OTLP/HTTP proxy, and every runs command must give the
//! answer one replica gives for the same seed, whichever replica is asked. A replica killed
//! mid-run makes answers `partial` naming it; restarted, it learns the open run from its peers
//! before it reports ready.

mod support;

use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{client, free_port, python};

fn bin() -> String {
    std::env::var("WATCHTOWER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchtower").to_string())
}

/// One replica: health (runs API) on `host:health`, OTLP/HTTP on 127.0.0.1:`http`.
struct Replica {
    child: Option<Child>,
    host: String,
    health: u16,
    http: u16,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// a command line the gateway is started under (its program and arguments come after)
    launcher: Vec<String>,
}

impl Replica {
    fn new(dir: &Path, name: &str, host: &str, health: u16, peers: &[String]) -> Replica {
        Replica::protected(dir, name, host, health, peers, None)
    }

    /// A replica whose runs API accepts only `Bearer <token>` (a `bearertokenauth`
    /// extension named in `runs.auth`, which is also the credential its peer calls carry).
    fn protected(
        dir: &Path,
        name: &str,
        host: &str,
        health: u16,
        peers: &[String],
        token: Option<&str>,
    ) -> Replica {
        Replica::build(dir, name, host, health, peers, token, "")
    }

    /// A replica whose `runs` extension also has `extra` (`, max_runs: 1`).
    fn with_runs(dir: &Path, name: &str, health: u16, peers: &[String], extra: &str) -> Replica {
        Replica::build(dir, name, "127.0.0.1", health, peers, None, extra)
    }

    fn build(
        dir: &Path,
        name: &str,
        host: &str,
        health: u16,
        peers: &[String],
        token: Option<&str>,
        extra: &str,
    ) -> Replica {
        let (auth_ext, runs_auth, service_ext) = match token {
            Some(t) => (
                format!("\n  bearertokenauth/runs: {{ token: \"{t}\" }}"),
                ", auth: { authenticator: bearertokenauth/runs }",
                ", bearertokenauth/runs",
            ),
            None => (String::new(), "", ""),
        };
        let (http, grpc) = (free_port(), free_port());
        let peers = peers
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}
      http: {{ endpoint: "127.0.0.1:{http}" }}
exporters:
  runsummary: {{ sending_queue: {{ queue_size: 1000 }} }}
extensions:
  health_check: {{ endpoint: "{host}:{health}" }}{auth_ext}
  runs: {{ max_duration: 1h, peers: [{peers}], peer_timeout: 2s, end_drain_timeout: 1s{runs_auth}{extra} }}
service:
  extensions: [health_check, runs{service_ext}]
  telemetry: {{ metrics: {{ address: "" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [runsummary] }}
    metrics: {{ receivers: [otlp], exporters: [runsummary] }}
    logs: {{ receivers: [otlp], exporters: [runsummary] }}
"#
        );
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, text).expect("write config");
        Replica {
            child: None,
            host: host.into(),
            health,
            http,
            config,
            env: Vec::new(),
            launcher: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.health)
    }
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.health)
    }
    fn otlp(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn spawn(&mut self) {
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "error")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway");
        self.child = Some(child);
    }

    /// Waits until health answers 200 (ready).
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client().get(format!("{}/", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become ready",
                self.addr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the replica as Kubernetes does (SIGTERM), and waits until it has exited.
    fn stop(&mut self) {
        self.term();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and returns at once (see [`Replica::stop`]).
    fn term(&self) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        {
            // SAFETY: kill(2) with a child's pid and a signal number has no memory effects
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An OTLP/HTTP proxy sending each request to the next replica in turn.
async fn round_robin(targets: Vec<String>) -> (String, Arc<AtomicUsize>) {
    struct Rr {
        targets: Vec<String>,
        next: Arc<AtomicUsize>,
    }
    let next = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(Rr {
        targets,
        next: next.clone(),
    });
    let app = axum::Router::new()
        .route(
            "/v1/{signal}",
            axum::routing::post(
                |State(rr): State<Arc<Rr>>,
                 AxPath(signal): AxPath<String>,
                 h: HeaderMap,
                 b: Bytes| async move {
                    let i = rr.next.fetch_add(1, Ordering::Relaxed) % rr.targets.len();
                    let mut req = client()
                        .post(format!("{}/v1/{signal}", rr.targets[i]))
                        .body(b);
                    for name in ["content-type", "content-encoding"] {
                        if let Some(v) = h.get(name) {
                            req = req.header(name, v.clone());
                        }
                    }
                    match req.send().await {
                        Ok(r) => {
                            let code = StatusCode::from_u16(r.status().as_u16())
                                .unwrap_or(StatusCode::BAD_GATEWAY);
                            let ct = r.headers().get("content-type").cloned().unwrap_or(
                                axum::http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            (
                                code,
                                [("content-type", ct)],
                                r.bytes().await.unwrap_or_default(),
                            )
                        }
                        Err(_) => (
                            StatusCode::BAD_GATEWAY,
                            [(
                                "content-type",
                                axum::http::HeaderValue::from_static("text/plain"),
                            )],
                            Bytes::new(),
                        ),
                    }
                },
            ),
        )
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://127.0.0.1:{port}"), next)
}

/// Runs generate.py against `endpoint` and returns its manifest.
fn generate(dir: &Path, endpoint: &str, scenario: &str, count: u32, seed: u32, tag: &str) -> Value {
    let manifest = dir.join(format!("manifest-{tag}.json"));
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
        .output()
        .expect("run generate.py");
    assert!(
        out.status.success(),
        "generate.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("manifest json")
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run cli");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `run-start` (or `run-end`) of run `id` asked of `url` through the CLI, which must succeed
/// (`run-start` printing the id).
fn run_cmd_ok(cmd: &str, url: &str, id: &str) {
    let (code, out, err) = cli(&[cmd, "--url", url, "--id", id]);
    assert_eq!(code, 0, "{cmd} {id} at {url}: {err}");
    if cmd == "run-start" {
        assert_eq!(out.trim(), id, "{err}");
    }
}

/// Two replicas `a` and `b` on 127.0.0.1, each with both in its static peers list, started
/// and ready.
async fn static_pair(dir: &Path) -> (Replica, Replica) {
    let mut tier = static_tier(dir, "ab", 2).await;
    let b = tier.pop().expect("two replicas");
    let a = tier.pop().expect("two replicas");
    (a, b)
}

/// `n` replicas `<prefix>0..` on 127.0.0.1, each with all of them in its static peers list,
/// started and ready.
async fn static_tier(dir: &Path, prefix: &str, n: usize) -> Vec<Replica> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut tier: Vec<Replica> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| Replica::new(dir, &format!("{prefix}{i}"), "127.0.0.1", p, &peers))
        .collect();
    up_all(&mut tier).await;
    tier
}

/// Starts every replica of `tier`, then waits until each is ready.
async fn up_all(tier: &mut [Replica]) {
    for r in tier.iter_mut() {
        r.spawn();
    }
    for r in tier.iter() {
        r.ready().await;
    }
}

/// Asks `r` for run `id` (merged) and checks the answer is whole: `spans` spans, not partial.
async fn assert_whole(r: &Replica, id: &str, spans: u64) {
    let (_, s) = get(&format!("{}/runs/{id}", r.url()), false).await;
    assert_eq!(
        (u(&s["totals"]["spans"]), &s["partial"]),
        (spans, &Value::Bool(false)),
        "{id} asked of {}: {s}",
        r.addr()
    );
}

/// Starts every replica, then waits until each is ready.
async fn up(replicas: &mut [&mut Replica]) {
    for r in replicas.iter_mut() {
        r.spawn();
    }
    for r in replicas.iter() {
        r.ready().await;
    }
}

/// GET a runs API path; `local` asks the replica for its own part only (as a peer would).
async fn get(url: &str, local: bool) -> (u16, Value) {
    let mut req = client().get(url);
    if local {
        req = req.header("x-watchtower-peer", "test");
    }
    let r = req.send().await.expect("GET");
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// What must be equal between the tier's merged summary and one replica's: counts per
/// service, exception groups by fingerprint, severity counts.
fn essence(s: &Value) -> Value {
    let mut groups: Vec<(String, String, String, u64)> = s["exception_groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    (
                        g["service"].as_str().unwrap_or("").to_string(),
                        g["type"].as_str().unwrap_or("").to_string(),
                        g["fingerprint"].as_str().unwrap_or("").to_string(),
                        u(&g["count"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    groups.sort();
    let services: BTreeMap<String, Value> = s["services"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let ops: BTreeMap<String, (u64, u64)> = v["operations"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(n, op)| {
                                    (n.clone(), (u(&op["count"]), u(&op["error_count"])))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        k.clone(),
                        serde_json::json!({
                            "spans": v["spans"], "error_spans": v["error_spans"],
                            "log_records": v["log_records"], "exceptions": v["exceptions"],
                            "by_severity": v["log_records_by_severity"], "operations": ops,
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut totals = s["totals"].clone();
    totals["metric_points"] = Value::Null; // metric exports depend on timing, not on the seed
    serde_json::json!({ "totals": totals, "services": services, "groups": groups })
}

/// The gate's JSON report without timing-dependent parts (latencies).
fn gate_essence(report: &str) -> Value {
    let r: Value = serde_json::from_str(report).expect("gate json");
    let checks: Vec<Value> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] != "p95_regression_pct")
        .map(|c| serde_json::json!({ "name": c["name"], "value": c["value"], "status": c["status"] }))
        .collect();
    serde_json::json!({
        "verdict": r["verdict"], "exit_code": r["exit_code"], "checks": checks,
        "new_exception_types": r["new_exception_types"],
        "groups": r["new_exception_groups"].as_array().map(|a| a.iter().map(|g| (g["type"].clone(), g["fingerprint"].clone(), g["count"].clone())).collect::<Vec<_>>()),
    })
}

/// The single-replica answer for a seed: (summary essence, gate essence).
async fn single_replica_answer(dir: &Path, seed: u32) -> (Value, Value) {
    let mut one = Replica::new(dir, "single", "127.0.0.1", free_port(), &[]);
    one.spawn();
    one.ready().await;
    let url = one.url();
    assert_eq!(cli(&["run-start", "--url", &url, "--id", "R"]).0, 0);
    generate(dir, &one.otlp(), "new-exception", 120, seed, "single");
    assert_eq!(cli(&["run-end", "--url", &url, "--id", "R"]).0, 0);
    let (_, s) = get(&format!("{url}/runs/R"), false).await;
    let (code, report, _) = cli(&["gate", "--url", &url, "--run", "R", "--format", "json"]);
    assert_eq!(code, 2, "a new exception type blocks: {report}");
    one.kill();
    (essence(&s), gate_essence(&report))
}

/// Runs the whole scenario on a tier of three replicas.
async fn tier_scenario(dir: &Path, mut tier: Vec<Replica>, seed: u32) {
    let (want_summary, want_gate) = single_replica_answer(dir, seed).await;
    up_all(&mut tier).await;
    let urls: Vec<String> = tier.iter().map(|r| r.url()).collect();
    let (proxy, sent) = round_robin(tier.iter().map(|r| r.otlp()).collect()).await;

    // run-start on replica 0 opens the run on all three before it returns
    let (code, out, err) = cli(&["run-start", "--url", &urls[0], "--id", "R"]);
    assert_eq!((code, out.trim()), (0, "R"), "{err}");
    assert!(!err.contains("warning"), "every replica has the run: {err}");
    for u in &urls {
        let (code, s) = get(&format!("{u}/runs/R"), true).await;
        assert_eq!((code, s["state"].as_str()), (200, Some("open")), "{u}");
    }
    generate(dir, &proxy, "new-exception", 120, seed, "tier");
    assert!(
        sent.load(Ordering::Relaxed) >= 6,
        "the proxy spread the traffic"
    );
    // every replica received and stamped a share (summaries are aggregated asynchronously)
    for url in &urls {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, s) = get(&format!("{url}/runs/R"), true).await;
            let t = &s["totals"];
            // a replica may have been sent only logs or only metrics by the round robin
            if u(&t["spans"]) + u(&t["log_records"]) + u(&t["metric_points"]) > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} summarized its share: {}",
                s["totals"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // run-end on another replica, gate and show asked of a third
    let (code, out, err) = cli(&["run-end", "--url", &urls[1], "--id", "R"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, merged) = get(&format!("{}/runs/R", urls[2]), false).await;
    assert_eq!(code, 200);
    assert_eq!(merged["state"], "ended");
    assert_eq!(merged["partial"], false);
    assert!(merged.get("late_joins").is_none(), "{merged}");
    assert_eq!(
        essence(&merged),
        want_summary,
        "the tier's summary equals one replica's"
    );
    for u in &urls {
        let (code, report, _) = cli(&["gate", "--url", u, "--run", "R", "--format", "json"]);
        assert_eq!(code, 2);
        assert_eq!(gate_essence(&report), want_gate, "gate asked of {u}");
    }
    // the same answer from every replica, to the byte: parts merge in one canonical order
    // (group order, example trace ids, float sums), and every replica recorded the end time
    // of the run-end call it was sent
    let mut answers = Vec::new();
    for u in &urls {
        let r = client()
            .get(format!("{u}/runs/R"))
            .send()
            .await
            .expect("GET");
        answers.push(r.text().await.unwrap_or_default());
        let (_, part) = get(&format!("{u}/runs/R"), true).await;
        assert_eq!(
            part["ended_unix_ms"], merged["ended_unix_ms"],
            "{u}: one end time on every replica"
        );
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "byte-identical answers: {answers:#?}"
    );
    let (code, list, _) = cli(&["runs", "list", "--url", &urls[2]]);
    assert_eq!(code, 0);
    let line: Vec<&str> = list.lines().filter(|l| l.starts_with("R ")).collect();
    assert_eq!(line.len(), 1, "one line per run: {list}");
    assert!(
        line[0].contains(&format!(" {} ", merged["totals"]["spans"])),
        "merged counts: {list}"
    );

    // a second run; replica 2 dies mid-run
    assert_eq!(cli(&["run-start", "--url", &urls[1], "--id", "R2"]).0, 0);
    generate(dir, &proxy, "baseline", 30, seed + 1, "r2");
    let dead = tier[2].addr();
    tier[2].kill();
    let (code, s) = get(&format!("{}/runs/R2", urls[0]), false).await;
    assert_eq!(code, 200);
    assert_eq!(s["partial"], true, "an answer without a replica says so");
    assert_eq!(
        s["missing_replicas"],
        serde_json::json!([dead]),
        "and names it"
    );
    let (_, page) = get(&format!("{}/runs", urls[1]), false).await;
    assert_eq!(
        (page["partial"].clone(), page["missing_replicas"].clone()),
        (Value::Bool(true), serde_json::json!([dead]))
    );
    let (code, report, _) = cli(&[
        "gate",
        "--url",
        &urls[0],
        "--run",
        "R2",
        "--baseline",
        "R2",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "a partial view never passes: {report}");
    assert!(report.contains(&dead), "{report}");
    let (code, _, err) = cli(&["run-start", "--url", &urls[0], "--id", "R3"]);
    assert_eq!(code, 0);
    assert!(
        err.contains(&dead),
        "run-start names the replica that did not get the run: {err}"
    );

    // restarted (no runs directory: it has forgotten everything), it learns R2 and R3 from its
    // peers before it reports ready, and stamps its data from then on
    tier[2].spawn();
    tier[2].ready().await;
    for id in ["R2", "R3"] {
        let (code, s) = get(&format!("{}/runs/{id}", urls[2]), true).await;
        assert_eq!(
            (code, s["state"].as_str()),
            (200, Some("open")),
            "{id} learnt before ready"
        );
    }
    assert_eq!(cli(&["run-end", "--url", &urls[0], "--id", "R3"]).0, 0);
    let body = support::trace_request("late-svc", 1, 7);
    let (code, _, _) = support::post_protobuf(&format!("{}/v1/traces", tier[2].otlp()), body).await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = get(&format!("{}/runs/R2", urls[2]), true).await;
        if u(&s["services"]["late-svc"]["spans"]) == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted replica stamps R2: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the merged list pages like one replica's: three runs, one per page, each once
    let mut seen = Vec::new();
    let mut path = "/runs?limit=1".to_string();
    for _ in 0..5 {
        let (code, page) = get(&format!("{}{path}", urls[1]), false).await;
        assert_eq!(code, 200, "{page}");
        seen.extend(
            page["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["id"].clone()),
        );
        match page["next_page_token"].as_str() {
            Some(t) => path = format!("/runs?limit=1&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        serde_json::json!(["R3", "R2", "R"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    );
    let (code, s) = get(&format!("{}/runs/R2/end", urls[0]), false).await;
    assert_eq!(code, 405, "end is a POST");
    let r = client()
        .post(format!("{}/runs/R2/end", urls[0]))
        .send()
        .await
        .expect("end");
    let s2: Value =
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    // what the killed replica counted before it died is gone (no directory): every answer
    // still names it, though it is back, and its new part says it began after the run
    assert_eq!(
        (&s2["partial"], &s2["missing_replicas"]),
        (&Value::Bool(true), &serde_json::json!([dead])),
        "its part from before the crash is lost: {s} {s2}"
    );
    assert_eq!(
        s2["late_joins"].as_array().map(Vec::len),
        Some(1),
        "the restarted replica's part says it began after the run: {s2}"
    );
    assert_eq!(u(&s2["services"]["late-svc"]["spans"]), 7);
    assert_eq!(s2["state"], "ended");
}

/// Peers from a static list (every replica lists all three, itself included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_static_peers_answer_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let tier = (0..3)
        .map(|i| Replica::new(dir.path(), &format!("r{i}"), "127.0.0.1", ports[i], &peers))
        .collect();
    tier_scenario(dir.path(), tier, 7).await;
}

/// Peers from one DNS name with three A records (127.0.0.2-4, each replica on the same port,
/// as pods behind a headless Service). The name is served by nss_wrapper
/// (libnss-wrapper, installed by `make test`), preloaded into the gateway processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_dns_peers_answer_as_one() {
    let lib = [
        "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
        "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
        "/usr/lib/libnss_wrapper.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libnss_wrapper.so is missing: run `make test` (it installs libnss-wrapper)");
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    let name = "watchtower-headless.test";
    std::fs::write(
        &hosts,
        format!("127.0.0.2 {name}\n127.0.0.3 {name}\n127.0.0.4 {name}\n"),
    )
    .expect("hosts");
    let port = port_on_127_0_0_2();
    let tier = loopback_tier(dir.path(), "d", port, &format!("dns+{name}:{port}"), |r| {
        r.env = vec![
            ("LD_PRELOAD".into(), lib.into()),
            ("NSS_WRAPPER_HOSTS".into(), hosts.display().to_string()),
            ("NSS_WRAPPER_PASSWD".into(), "/etc/passwd".into()),
            ("NSS_WRAPPER_GROUP".into(), "/etc/group".into()),
        ];
    });
    tier_scenario(dir.path(), tier, 9).await;
}

/// A free port on 127.0.0.2 (the loopback tiers' replicas all listen on one port, as pods do).
fn port_on_127_0_0_2() -> u16 {
    std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Three replicas named `<prefix>0-2` on 127.0.0.2-4 at `port`, each with the one `peers`
/// entry and then `setup` applied (how it is started, its environment).
fn loopback_tier(
    dir: &Path,
    prefix: &str,
    port: u16,
    peers: &str,
    setup: impl Fn(&mut Replica),
) -> Vec<Replica> {
    (0..3)
        .map(|i| {
            let mut r = Replica::new(
                dir,
                &format!("{prefix}{i}"),
                &format!("127.0.0.{}", i + 2),
                port,
                &[peers.to_string()],
            );
            setup(&mut r);
            r
        })
        .collect()
}

/// Peers found by DNS SRV records (`dnssrv+name`), as a Kubernetes headless Service publishes
/// them: the tier is one. A DNS server in this test answers the SRV name with the three
/// replicas' targets and ports and each target with its loopback address; each gateway runs
/// in a private mount namespace (`unshare`, root) where `/etc/resolv.conf` names that server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_dns_srv_peers_answer_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, queries, launcher, _) = srv_setup(dir.path(), "127.0.0.153").await;
    let peers = "dnssrv+_health._tcp.watchtower-headless.test";
    let tier = loopback_tier(dir.path(), "s", port, peers, |r| {
        r.launcher = launcher.clone()
    });
    tier_scenario(dir.path(), tier, 11).await;
    assert!(
        queries.load(Ordering::Relaxed) > 0,
        "the gateways never asked the test's DNS server"
    );
}

/// What an SRV test needs: the test DNS server started on `dns_ip`:53 ([`dns_server`]), the
/// replicas' port, the server's query count, the command line that starts a gateway in a
/// private mount namespace whose `/etc/resolv.conf` names that server (root only, as CI runs),
/// and how many replicas `_health._tcp.shrinking.test` lists (3 until the test changes it).
async fn srv_setup(
    dir: &Path,
    dns_ip: &str,
) -> (u16, Arc<AtomicUsize>, Vec<String>, Arc<AtomicUsize>) {
    // SAFETY: geteuid has no preconditions
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (a private mount namespace and a DNS server on port 53), as CI runs"
    );
    let server = tokio::net::UdpSocket::bind((dns_ip, 53))
        .await
        .unwrap_or_else(|e| panic!("bind the test DNS server on {dns_ip}:53: {e}"));
    let port = port_on_127_0_0_2();
    let queries = Arc::new(AtomicUsize::new(0));
    let listed = Arc::new(AtomicUsize::new(3));
    tokio::spawn(dns_server(server, port, queries.clone(), listed.clone()));
    let conf = dir.join("resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver {dns_ip}\noptions timeout:1 attempts:2\n"),
    )
    .expect("resolv.conf");
    let launcher = vec![
        "unshare".to_string(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#.into(),
        conf.display().to_string(),
    ];
    (port, queries, launcher, listed)
}

/// A DNS server for the SRV tests: `_health._tcp.watchtower-headless.test.` has three targets
/// `r<i>.watchtower-headless.test.` at `port`, each target's A record 127.0.0.<i+2>;
/// `_health._tcp.ghosts.test.` has `r0` and `ghost.ghosts.test.` (no address);
/// `_health._tcp.shrinking.test.` has the first `listed` of the three targets (a Service
/// scaled up and down); NXDOMAIN for anything else.
async fn dns_server(
    sock: tokio::net::UdpSocket,
    port: u16,
    queries: Arc<AtomicUsize>,
    listed: Arc<AtomicUsize>,
) {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use hickory_proto::serialize::binary::BinEncodable;
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        let Ok(q) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        queries.fetch_add(1, Ordering::Relaxed);
        let mut m = Message::new();
        m.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(q.op_code())
            .set_recursion_desired(q.recursion_desired())
            .set_recursion_available(true)
            .set_authoritative(true);
        let target =
            |i: u8| Name::from_ascii(format!("r{i}.watchtower-headless.test.")).expect("name");
        for query in q.queries() {
            m.add_query(query.clone());
            let name = query.name().to_ascii().to_lowercase();
            match query.query_type() {
                RecordType::SRV if name == "_health._tcp.watchtower-headless.test." => {
                    for i in 0..3 {
                        m.add_answer(Record::from_rdata(
                            query.name().clone(),
                            5,
                            RData::SRV(SRV::new(0, 10, port, target(i))),
                        ));
                    }
                }
                RecordType::SRV if name == "_health._tcp.shrinking.test." => {
                    for i in 0..listed.load(Ordering::Relaxed).min(3) as u8 {
                        m.add_answer(Record::from_rdata(
                            query.name().clone(),
                            5,
                            RData::SRV(SRV::new(0, 10, port, target(i))),
                        ));
                    }
                }
                // the first replica, and a target that has no address
                RecordType::SRV if name == "_health._tcp.ghosts.test." => {
                    for t in [
                        target(0),
                        Name::from_ascii("ghost.ghosts.test.").expect("name"),
                    ] {
                        m.add_answer(Record::from_rdata(
                            query.name().clone(),
                            5,
                            RData::SRV(SRV::new(0, 10, port, t)),
                        ));
                    }
                }
                RecordType::A => {
                    if let Some(i) = (0..3u8).find(|i| target(*i).to_ascii() == name) {
                        m.add_answer(Record::from_rdata(
                            query.name().clone(),
                            5,
                            RData::A(A::new(127, 0, 0, i + 2)),
                        ));
                    } else {
                        m.set_response_code(ResponseCode::NXDomain);
                    }
                }
                // AAAA of a target: no such record (NOERROR, empty)
                RecordType::AAAA if (0..3u8).any(|i| target(i).to_ascii() == name) => {}
                _ => {
                    m.set_response_code(ResponseCode::NXDomain);
                }
            }
        }
        if let Ok(bytes) = m.to_bytes() {
            let _ = sock.send_to(&bytes, from).await;
        }
    }
}

/// A tier whose peers are the SRV records of `_health._tcp.shrinking.test` (a test DNS server
/// on `dns_ip`): r0 and r1 listed and started, run `id` started on r0, then a scale-up (r2
/// listed, started, taking the run up from its peers), and 10, 20 and 40 spans sent to r0, r1
/// and r2. Returns the tier, the DNS server's query count and how many replicas it lists.
async fn scaled_up_tier(
    dir: &Path,
    dns_ip: &str,
    prefix: &str,
    id: &str,
) -> (Vec<Replica>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (port, queries, launcher, listed) = srv_setup(dir, dns_ip).await;
    listed.store(2, Ordering::Relaxed);
    let peers = "dnssrv+_health._tcp.shrinking.test";
    let mut tier = loopback_tier(dir, prefix, port, peers, |r| r.launcher = launcher.clone());
    {
        let [r0, r1, r2] = &mut tier[..] else {
            panic!("three replicas")
        };
        up(&mut [&mut *r0, &mut *r1]).await;
        run_cmd_ok("run-start", &r0.url(), id);
        listed.store(3, Ordering::Relaxed);
        r2.spawn();
        r2.ready().await;
    }
    for (r, n) in tier.iter().zip([10, 20, 40]) {
        send_spans(r, "svc", n, None).await;
    }
    (tier, queries, listed)
}

/// Run `id` asked of `r` once `r` has looked its peers up again after `listed` changed to
/// `now_listed` (its cached answer lasts at most 1 s).
async fn show_after_dns_change(
    r: &Replica,
    id: &str,
    queries: &AtomicUsize,
    listed: &AtomicUsize,
    now_listed: usize,
) -> Value {
    listed.store(now_listed, Ordering::Relaxed);
    let asked = queries.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, s) = get(&format!("{}/runs/{id}", r.url()), false).await;
        if queries.load(Ordering::Relaxed) > asked + 1 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never asked DNS again: {s}",
            r.addr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replicas that leave the headless Service while a run is open without handing their parts
/// over (killed, then out of the SRV records: an eviction, a node lost) are named missing, not
/// dropped from the counts without a word: one that took the run at `run-start`, and one that
/// took it up from its peers after a scale-up. Before, once the records no longer listed
/// them, answers were whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_removed_from_the_service_while_a_run_is_open_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut tier, queries, listed) = scaled_up_tier(dir.path(), "127.0.0.155", "k", "k1").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, s) = get(&format!("{}/runs/k1", tier[0].url()), false).await;
        if u(&s["totals"]["spans"]) == 70 && s["partial"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "r0 never saw the whole tier: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // r1 and r2 are killed and leave the records
    tier[1].kill();
    tier[2].kill();
    let mut gone = vec![tier[1].addr(), tier[2].addr()];
    gone.sort();
    let s = show_after_dns_change(&tier[0], "k1", &queries, &listed, 1).await;
    assert_eq!(u(&s["totals"]["spans"]), 10, "{s}");
    assert_eq!(s["partial"], true, "{s}");
    assert_eq!(s["missing_replicas"], serde_json::json!(gone), "{s}");
    // and after the run ended
    run_cmd_ok("run-end", &tier[0].url(), "k1");
    let (code, s) = get(&format!("{}/runs/k1", tier[0].url()), false).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (&s["state"], &s["partial"], &s["missing_replicas"]),
        (
            &Value::from("ended"),
            &Value::Bool(true),
            &serde_json::json!(gone)
        ),
        "{s}"
    );
}

/// A scale-down (replicas stopped with SIGTERM, then out of the SRV records) loses no counts:
/// each stopping replica without a `directory` hands its part to a peer, which adds it to its
/// own, so the answers stay whole and nobody is missing: a replica that took the run at
/// `run-start`, and one that took it up after a scale-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_hands_the_parts_to_the_replicas_that_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut tier, queries, listed) = scaled_up_tier(dir.path(), "127.0.0.156", "h", "d1").await;
    // r1's part is large (600 operations: far over the runs API's 64 KiB request bodies)
    for svc in ["big-a", "big-b", "big-c"] {
        send_body(&tier[1], spans_json_ops(svc, 200, None, 200)).await;
    }
    // r1 and r2 stop as a scale-down stops pods, and leave the records
    tier[1].stop();
    tier[2].stop();
    let r0 = &tier[0];
    let s = show_after_dns_change(r0, "d1", &queries, &listed, 1).await;
    assert_eq!(
        (u(&s["totals"]["spans"]), &s["partial"]),
        (670, &Value::Bool(false)),
        "{s}"
    );
    assert_eq!(s["absorbed"].as_array().map(Vec::len), Some(2), "{s}");
    assert_eq!(
        s["services"]["big-b"]["operations"]
            .as_object()
            .map(|o| o.len()),
        Some(200)
    );
    run_cmd_ok("run-end", &r0.url(), "d1");
    let (_, s) = get(&format!("{}/runs/d1", r0.url()), false).await;
    assert_eq!(
        (&s["state"], u(&s["totals"]["spans"]), &s["partial"]),
        (&Value::from("ended"), 670, &Value::Bool(false)),
        "{s}"
    );
    // a part is taken once: the same hand-over again changes nothing
    let (_, part) = get(&format!("{}/runs/d1", r0.url()), true).await;
    let from = part["absorbed"][0].as_str().unwrap_or_default().to_string();
    let again = serde_json::json!({"from": from, "part": part}).to_string();
    let r = client()
        .post(format!("{}/runs/d1/absorb", r0.url()))
        .header("x-watchtower-peer", "1")
        .header("content-type", "application/json")
        .body(again)
        .send()
        .await
        .expect("absorb");
    assert_eq!(r.status().as_u16(), 200);
    let (_, s) = get(&format!("{}/runs/d1", r0.url()), false).await;
    assert_eq!(u(&s["totals"]["spans"]), 670, "{s}");
}

/// An SRV target without an address is a replica the tier cannot reach: `run-start` names it
/// missing, as it names a peer that does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srv_target_without_an_address_is_a_missing_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, _, launcher, _) = srv_setup(dir.path(), "127.0.0.154").await;
    let mut r = Replica::new(
        dir.path(),
        "g0",
        "127.0.0.2",
        port,
        &["dnssrv+_health._tcp.ghosts.test".to_string()],
    );
    r.launcher = launcher;
    r.spawn();
    r.ready().await;
    let (code, s) = post_run(&r.url(), serde_json::json!({"id": "g1"})).await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(
        s["missing_replicas"],
        serde_json::json!([format!("ghost.ghosts.test.:{port}")]),
        "{s}"
    );
}

/// The runs API protected by a bearer token on every replica: replicas authenticate to
/// each other with it, the CLI sends it from `--bearer-token-file`, and a replica that does
/// not accept the tier's credential is named as missing, never taken for one without the run.
/// An id that a peer holds (opened there by `test.run.id` data) is taken on the whole tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_tier_authenticates_its_peers_and_names_one_that_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut tier: Vec<Replica> = (0..3)
        .map(|i| {
            // replica 2 was deployed with another token
            let token = if i == 2 { "other-token" } else { "tier-token" };
            Replica::protected(
                dir.path(),
                &format!("p{i}"),
                "127.0.0.1",
                ports[i],
                &peers,
                Some(token),
            )
        })
        .collect();
    up_all(&mut tier).await;
    let urls: Vec<String> = tier.iter().map(|r| r.url()).collect();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tier-token\n").expect("token file");
    let token_arg = token_file.to_string_lossy().into_owned();
    let refusing = tier[2].addr();
    // `watchtower <command> --url <url> --id <id>` with the tier's token
    let authed_cli = |command: &str, url: &str, id: &str| {
        cli(&[
            command,
            "--url",
            url,
            "--id",
            id,
            "--bearer-token-file",
            &token_arg,
        ])
    };

    // without the credential the CLI is refused; with it, run-start opens the run on the
    // replicas that accept the tier's credential and names the one that does not
    let (code, _, err) = cli(&["run-start", "--url", &urls[0], "--id", "A1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401"), "{err}");
    let (code, out, err) = authed_cli("run-start", &urls[0], "A1");
    assert_eq!((code, out.trim()), (0, "A1"), "{err}");
    assert!(err.contains(&refusing), "names the refusing replica: {err}");
    assert!(
        !err.contains(&tier[1].addr()),
        "replica 1 has the run: {err}"
    );
    let authed = |url: String| {
        client()
            .get(url)
            .header("authorization", "Bearer tier-token")
            .send()
    };
    // replica 1 has it (from replica 0's call) and answers a merged read naming replica 2
    let r = authed(format!("{}/runs/A1", urls[1])).await.expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let s: Value = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(s["state"], "open");
    assert_eq!(s["partial"], true, "{s}");
    assert_eq!(s["missing_replicas"], serde_json::json!([refusing]), "{s}");
    // a run that only the refusing replica could hold is 503 (cannot tell), not a plain 404
    let r = authed(format!("{}/runs/nowhere", urls[0]))
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 503);
    let s: Value = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(s["partial"], true, "{s}");

    // `test.run.id` data opens run B1 on replica 1 alone; run-start B1 elsewhere is a conflict
    let body = support::trace_request_with_resource("svc", 1, 2, &[("test.run.id", "B1")]);
    let (code, _, _) = support::post_protobuf(&format!("{}/v1/traces", tier[1].otlp()), body).await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while authed(format!("{}/runs/B1", urls[1]))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "B1 opened by data on replica 1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, err) = authed_cli("run-start", &urls[0], "B1");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("409"), "the id is taken on the tier: {err}");

    // run-end says that its totals lack a replica
    let (code, _, err) = authed_cli("run-end", &urls[1], "A1");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains(&refusing), "{err}");
    // a replica frozen while run-end is sent misses it; once it runs again it is ended with
    // the tier's end time (the call it missed is retried, or reaches it late), so it stops
    // stamping the run
    let (code, _, err) = authed_cli("run-start", &urls[0], "F1");
    assert_eq!(code, 0, "{err}");
    let frozen = tier[1]
        .child
        .as_ref()
        .map(|c| c.id() as i32)
        .expect("running");
    // SAFETY: a plain kill(2) on a child process this test started
    unsafe { libc::kill(frozen, libc::SIGSTOP) };
    let (code, _, err) = authed_cli("run-end", &urls[0], "F1");
    unsafe { libc::kill(frozen, libc::SIGCONT) };
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&tier[1].addr()),
        "the frozen replica is named: {err}"
    );
    let local = |url: String| {
        client()
            .get(url)
            .header("authorization", "Bearer tier-token")
            .header("x-watchtower-peer", "test")
            .send()
    };
    let r = local(format!("{}/runs/F1", urls[0])).await.expect("GET");
    let tier_end: Value =
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = local(format!("{}/runs/F1", urls[1])).await.expect("GET");
        let part: Value =
            serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        if part["state"] == "ended" {
            assert_eq!(part["ended_unix_ms"], tier_end["ended_unix_ms"], "{part}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frozen replica never ended F1: {part}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a URL without its scheme is named as such
    let (code, _, err) = cli(&["runs", "list", "--url", "127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("http://"), "{err}");
}

/// A peer address where something else answers (a wrong port, a gateway without the runs
/// extension during a rolling upgrade) is not a replica without the run: its bare `404` makes
/// it missing, so an unknown id is "cannot tell" (503), not "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_replica_is_missing_not_empty() {
    // a bare 404, and a server that answers every path with 200 and JSON (it must not be
    // taken for a replica holding every id: run-start would always be a conflict)
    for answer_ok in [false, true] {
        not_a_replica(answer_ok).await;
    }
}

async fn not_a_replica(answer_ok: bool) {
    let other = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other_addr = other.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || async move {
            if answer_ok {
                (StatusCode::OK, "{\"status\":\"ok\"}")
            } else {
                (StatusCode::NOT_FOUND, "")
            }
        });
        let _ = axum::serve(other, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut r = Replica::new(
        dir.path(),
        "solo",
        "127.0.0.1",
        port,
        &[format!("127.0.0.1:{port}"), other_addr.clone()],
    );
    r.spawn();
    r.ready().await;
    let (code, s) = get(&format!("{}/runs/nowhere", r.url()), false).await;
    assert_eq!(code, 503, "{s}");
    assert_eq!(
        s["missing_replicas"],
        serde_json::json!([other_addr]),
        "{s}"
    );
    let (code, out, err) = cli(&["run-start", "--url", &r.url(), "--id", "S1"]);
    assert_eq!((code, out.trim()), (0, "S1"), "{err}");
    let (code, s) = get(&format!("{}/runs/S1", r.url()), false).await;
    assert_eq!(code, 200);
    assert_eq!(s["partial"], true, "{s}");
    assert_eq!(
        s["missing_replicas"],
        serde_json::json!([other_addr]),
        "{s}"
    );
}

/// An OTLP/JSON request of `n` spans of service `service`, with `test.run.id` when given.
fn spans_json(service: &str, n: usize, run: Option<&str>) -> String {
    spans_json_ops(service, n, run, 1)
}

/// `n` spans of `service` named after `ops` operations in turn (`op` when one).
fn spans_json_ops(service: &str, n: usize, run: Option<&str>, ops: usize) -> String {
    let mut attrs =
        vec![serde_json::json!({"key": "service.name", "value": {"stringValue": service}})];
    if let Some(r) = run {
        attrs.push(serde_json::json!({"key": "test.run.id", "value": {"stringValue": r}}));
    }
    let spans: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "traceId": format!("{:032x}", i + 1), "spanId": format!("{:016x}", i + 1),
                "name": if ops == 1 { "op".to_string() } else { format!("op-{}", i % ops) },
                "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{"resource": {"attributes": attrs},
        "scopeSpans": [{"spans": spans}]}]})
    .to_string()
}

async fn send_spans(r: &Replica, service: &str, n: usize, run: Option<&str>) {
    send_body(r, spans_json(service, n, run)).await;
}

/// Sends an OTLP/HTTP JSON traces body to `r`, which must accept it.
async fn send_body(r: &Replica, body: String) {
    let resp = client()
        .post(format!("{}/v1/traces", r.otlp()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send spans");
    assert_eq!(resp.status().as_u16(), 200);
}

async fn post_run(url: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}/runs"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /runs");
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

/// Two run-starts for one id reaching two replicas at the same moment: exactly one caller
/// is answered 201, and every replica holds that caller's run (not one each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_run_starts_for_one_id_leave_one_run_on_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut tier: Vec<Replica> = (0..3)
        .map(|i| Replica::new(dir.path(), &format!("r{i}"), "127.0.0.1", ports[i], &peers))
        .collect();
    for r in &mut tier {
        r.spawn();
    }
    for r in &tier {
        r.ready().await;
    }
    for i in 0..12 {
        let id = format!("race-{i}");
        let (ua, ub) = (tier[0].url(), tier[1].url());
        let (a, b) = tokio::join!(
            post_run(
                &ua,
                serde_json::json!({"id": id, "match": {"service.name": "svc-A"}})
            ),
            post_run(
                &ub,
                serde_json::json!({"id": id, "match": {"service.name": "svc-B"}})
            ),
        );
        let winners: Vec<&str> = [(&a, "svc-A"), (&b, "svc-B")]
            .iter()
            .filter(|((code, _), _)| *code == 201)
            .map(|(_, svc)| *svc)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "{id}: exactly one run-start wins: {a:?} {b:?}"
        );
        for (code, body) in [&a, &b] {
            if *code != 201 {
                assert_eq!(*code, 409, "{id}: {body}");
            }
        }
        for r in &tier {
            let (code, part) = get(&format!("{}/runs/{id}", r.url()), true).await;
            assert_eq!(code, 200, "{id} on {}: {part}", r.addr());
            assert_eq!(
                part["match"]["service.name"],
                winners[0],
                "{id} on {}: {part}",
                r.addr()
            );
        }
    }
}

/// One replica named twice in `peers` (by two spellings of its address) is one replica:
/// its part is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_listed_twice_in_peers_is_counted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pf, pg) = (free_port(), free_port());
    let mut f = Replica::new(
        dir.path(),
        "f",
        "127.0.0.1",
        pf,
        &[
            format!("127.0.0.1:{pf}"),
            format!("127.0.0.1:{pg}"),
            format!("localhost:{pg}"),
        ],
    );
    let mut g = Replica::new(
        dir.path(),
        "g",
        "127.0.0.1",
        pg,
        &[format!("127.0.0.1:{pf}"), format!("127.0.0.1:{pg}")],
    );
    up(&mut [&mut f, &mut g]).await;
    run_cmd_ok("run-start", &f.url(), "dup1");
    send_spans(&g, "svc", 30, None).await;
    run_cmd_ok("run-end", &f.url(), "dup1");
    for r in [&f, &g] {
        let (code, s) = get(&format!("{}/runs/dup1", r.url()), false).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(u(&s["totals"]["spans"]), 30, "asked of {}: {s}", r.addr());
    }
}

/// A replica that is up but does not hold a run the tier started (it refused run-start: its
/// `max_runs` were open), or that forgot its part (`max_runs` reached), is missing from the
/// answer, not an empty part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_its_part_makes_the_answer_partial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (free_port(), free_port());
    let peers = [format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}")];
    let mut a = Replica::new(dir.path(), "a", "127.0.0.1", pa, &peers);
    let mut b = Replica::with_runs(dir.path(), "b", pb, &peers, ", max_runs: 1");
    up(&mut [&mut a, &mut b]).await;
    // b's only slot taken by a run opened by data
    send_spans(&b, "svc", 5, Some("data1")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&format!("{}/runs/data1", b.url()), true).await.0 != 200 {
        assert!(Instant::now() < deadline, "data1 never opened on b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // run-start reaches b, which refuses it (429): the run-start says so, and so does every
    // later answer about the run
    let (code, s) = post_run(&a.url(), serde_json::json!({"id": "api1"})).await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["missing_replicas"], serde_json::json!([b.addr()]), "{s}");
    for r in [&a, &b] {
        let (code, s) = get(&format!("{}/runs/api1", r.url()), false).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["partial"], true, "asked of {}: {s}", r.addr());
    }
    // data1 ended, then forgotten by b to make room for another run: its only part is lost,
    // so the tier cannot say "no such run"
    let (code, _, err) = cli(&["run-end", "--url", &a.url(), "--id", "data1"]);
    assert_eq!(code, 0, "{err}");
    let (code, s) = post_run(&b.url(), serde_json::json!({"id": "api2"})).await;
    assert_eq!(code, 201, "{s}");
    let (code, s) = get(&format!("{}/runs/data1", a.url()), false).await;
    assert_eq!(code, 503, "{s}");
    assert_eq!(s["missing_replicas"], serde_json::json!([b.addr()]), "{s}");
}

/// A replica catches up with its peers' open runs before its receivers accept data: while a
/// peer has not answered the catch-up, the OTLP port refuses connections; once it has, the
/// peer's open run is held here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_accepts_data_only_after_learning_the_open_runs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peer = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let peer_addr = peer.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut r = Replica::build(
        dir.path(),
        "late",
        "127.0.0.1",
        port,
        &[peer_addr],
        None,
        "",
    );
    // long enough that the held call below is not timed out meanwhile
    let text = std::fs::read_to_string(&r.config)
        .expect("config")
        .replace("peer_timeout: 2s", "peer_timeout: 20s");
    std::fs::write(&r.config, text).expect("config");
    r.spawn();
    // the catch-up call arrives; it is held while the OTLP port is tried
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(30), peer.accept())
        .await
        .expect("no catch-up call")
        .expect("accept");
    let mut head = vec![0u8; 4096];
    let n = conn.read(&mut head).await.expect("read");
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("GET /runs?"), "{head}");
    let otlp = format!("127.0.0.1:{}", r.http);
    assert!(
        tokio::net::TcpStream::connect(&otlp).await.is_err(),
        "the receiver accepted a connection before the catch-up ended"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let page = serde_json::json!({"runs": [{
        "id": "held1", "state": "open", "source": "api", "labels": {}, "match": {},
        "started_unix_ms": now - 1000, "ended_unix_ms": null, "spans": 0, "log_records": 0,
        "exceptions": 0, "expires_unix_ms": now + 3_600_000}]})
    .to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-watchtower-replica: fake-peer\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
        page.len()
    );
    conn.write_all(answer.as_bytes()).await.expect("answer");
    drop(conn);
    r.ready().await;
    assert!(tokio::net::TcpStream::connect(&otlp).await.is_ok());
    let (code, part) = get(&format!("{}/runs/held1", r.url()), true).await;
    assert_eq!(code, 200, "{part}");
}

/// A replica that starts while its peer holds more open runs than one page of the runs API
/// (1,000) learns every one of them, the oldest too: the catch-up follows `next_page_token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_learns_more_open_runs_than_one_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (free_port(), free_port());
    let peers = [format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}")];
    let mut a = Replica::with_runs(dir.path(), "a", pa, &peers, ", max_runs: 1500");
    let mut b = Replica::with_runs(dir.path(), "b", pb, &peers, ", max_runs: 1500");
    a.spawn();
    a.ready().await;
    let n = 1100;
    // one client for all (a new client loads the system's root certificates each time)
    let (http, url) = (client(), format!("{}/runs", a.url()));
    let starts = futures::stream::iter(0..n).map(|i| {
        let req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "id": format!("p{i}") }).to_string());
        async move {
            let r = req.send().await.expect("POST /runs");
            (i, r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    });
    let answers: Vec<_> = starts.buffer_unordered(16).collect().await;
    for (i, code, s) in answers {
        assert_eq!(code, 201, "p{i}: {s}");
    }
    b.spawn();
    b.ready().await;
    for i in [0, 99, 100, n / 2, n - 1] {
        let (code, s) = get(&format!("{}/runs/p{i}", b.url()), true).await;
        assert_eq!(code, 200, "p{i} not learnt by the starting replica: {s}");
        assert_eq!(s["state"], "open", "p{i}: {s}");
    }
}

/// A replica restarted without a `directory` after a run ended has lost its part of it; it
/// cannot tell, but the tier recorded at `run-end` which replicas held a part, so every later
/// answer is `partial` and names it instead of leaving its counts out silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_lost_in_a_restart_after_the_run_ended_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, mut b) = static_pair(dir.path()).await;
    run_cmd_ok("run-start", &a.url(), "h1");
    send_spans(&a, "svc", 10, None).await;
    send_spans(&b, "svc", 20, None).await;
    run_cmd_ok("run-end", &a.url(), "h1");
    let (code, s) = get(&format!("{}/runs/h1", a.url()), false).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (u(&s["totals"]["spans"]), &s["partial"]),
        (30, &Value::Bool(false)),
        "{s}"
    );
    assert_eq!(
        holder_addresses(&s),
        [a.addr(), b.addr()].into_iter().collect::<BTreeSet<_>>(),
        "both held a part at the end: {s}"
    );
    // b restarts without a directory: its 20 spans are gone, and every answer says so
    b.kill();
    b.spawn();
    b.ready().await;
    for r in [&a, &b] {
        let (code, s) = get(&format!("{}/runs/h1", r.url()), false).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(u(&s["totals"]["spans"]), 10, "{s}");
        assert_eq!(s["partial"], true, "asked of {}: {s}", r.addr());
        assert_eq!(s["missing_replicas"], serde_json::json!([b.addr()]), "{s}");
    }
}

/// A replica that did not answer the `run-end` (it was down) is a holder since `run-start`:
/// back without its part, every later answer names it (the `run-end` answer did, and the data
/// it held is gone); back with its `directory`, its part counts again and nothing is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_at_run_end_and_back_without_its_part_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let peers = [pa, pb, pc].map(|p| format!("127.0.0.1:{p}"));
    let keep = dir.path().join("c-runs");
    std::fs::create_dir_all(&keep).expect("dir");
    let mut a = Replica::new(dir.path(), "a", "127.0.0.1", pa, &peers);
    let mut b = Replica::new(dir.path(), "b", "127.0.0.1", pb, &peers);
    let mut c = Replica::with_runs(
        dir.path(),
        "c",
        pc,
        &peers,
        &format!(", directory: \"{}\"", keep.display()),
    );
    up(&mut [&mut a, &mut b, &mut c]).await;
    run_cmd_ok("run-start", &a.url(), "h3");
    send_spans(&a, "svc", 10, None).await;
    send_spans(&b, "svc", 20, None).await;
    send_spans(&c, "svc", 40, None).await;
    // b dies; c stops cleanly (its final save keeps its part); then the run ends
    b.kill();
    c.stop();
    let (code, out, err) = cli(&["run-end", "--url", &a.url(), "--id", "h3"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, s) = get(&format!("{}/runs/h3", a.url()), false).await;
    let mut down = vec![b.addr(), c.addr()];
    down.sort();
    assert_eq!(s["missing_replicas"], serde_json::json!(down), "{s}");
    // both come back: b without its part, c with it
    b.spawn();
    c.spawn();
    b.ready().await;
    c.ready().await;
    for r in [&a, &b, &c] {
        let (code, s) = get(&format!("{}/runs/h3", r.url()), false).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(u(&s["totals"]["spans"]), 50, "asked of {}: {s}", r.addr());
        assert_eq!(s["partial"], true, "asked of {}: {s}", r.addr());
        assert_eq!(
            s["missing_replicas"],
            serde_json::json!([b.addr()]),
            "asked of {}: {s}",
            r.addr()
        );
    }
}

/// `POST /runs/-/holders` as a peer (`forwarded`) or as anyone else would send it.
async fn post_holders(url: &str, body: &str, forwarded: bool) -> (u16, String) {
    let mut req = client()
        .post(format!("{url}/runs/-/holders"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if forwarded {
        req = req.header("x-watchtower-peer", "1");
    }
    let r = req.send().await.expect("POST holders");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The holders record is the tier's own: `run-start` records who took the run on every
/// replica; only a peer's forwarded call adds to it, only with replica ids and addresses, and
/// nothing removes one. A recorded holder whose part is not there is named missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holders_record_is_kept_by_the_tier_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = static_pair(dir.path()).await;
    run_cmd_ok("run-start", &a.url(), "h4");
    let (_, part) = get(&format!("{}/runs/h4", b.url()), true).await;
    assert_eq!(
        holder_addresses(&part),
        [a.addr(), b.addr()].into_iter().collect::<BTreeSet<_>>(),
        "run-start recorded both on b: {part}"
    );
    let stranger =
        r#"{"runs":["h4"],"holders":[{"replica":"00000000000000ff","address":"127.0.0.1:1"}]}"#;
    let (code, body) = post_holders(&a.url(), stranger, false).await;
    assert_eq!(code, 403, "{body}");
    for bad in [
        r#"{}"#,
        r#"[]"#,
        r#"{"runs":["h4"],"holders":[{}]}"#,
        r#"{"runs":["h4"],"holders":[{"replica":"xyz"}]}"#,
        r#"{"runs":["h4"],"holders":[{"replica":"ab","address":"no-port"}]}"#,
        r#"{"runs":["h4"],"holders":[{"replica":"ab","address":"host:0"}]}"#,
        r#"{"runs":["h4"],"holders":[{"replica":"ab","address":"a b:80"}]}"#,
        r#"{"runs":["h4"],"holders":[],"extra":1}"#,
    ] {
        let (code, body) = post_holders(&a.url(), bad, true).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains("holders"), "{bad}: {body}");
    }
    let (code, body) = post_holders(
        &a.url(),
        r#"{"runs":["nope"],"holders":[{"replica":"ab"}]}"#,
        true,
    )
    .await;
    assert_eq!(code, 404, "{body}");
    // a recorded holder without a part is missing, whichever replica is asked
    let (code, body) = post_holders(&a.url(), stranger, true).await;
    assert_eq!((code, body.as_str()), (200, r#"{"runs":1}"#));
    for r in [&a, &b] {
        let (_, s) = get(&format!("{}/runs/h4", r.url()), false).await;
        assert_eq!(
            s["missing_replicas"],
            serde_json::json!(["127.0.0.1:1"]),
            "{s}"
        );
    }
    // nothing removes a holder
    let (code, body) = post_holders(&a.url(), r#"{"runs":["h4"],"holders":[]}"#, true).await;
    assert_eq!(code, 200, "{body}");
    let (_, s) = get(&format!("{}/runs/h4", a.url()), true).await;
    assert_eq!(s["holders"].as_array().map(Vec::len), Some(3), "{s}");
    // a part handed over is checked as those calls check what it carries into answers
    let (_, part) = get(&format!("{}/runs/h4", b.url()), true).await;
    let absorb = |change: &dyn Fn(&mut Value)| {
        let mut p = part.clone();
        change(&mut p);
        serde_json::json!({"from": "00000000000000ee", "part": p}).to_string()
    };
    for (what, body) in [
        (
            "markup in a holder",
            absorb(&|p| {
                p["holders"] = serde_json::json!([{"replica": "ab", "address": "\u{1b}[2J:1"}])
            }),
        ),
        (
            "an absorbed id",
            absorb(&|p| p["absorbed"] = serde_json::json!(["<img>"])),
        ),
        (
            "a label",
            absorb(&|p| p["labels"] = serde_json::json!({"k": "a\u{0}b"})),
        ),
        ("another run", absorb(&|p| p["id"] = Value::from("h5"))),
        (
            "from itself",
            serde_json::json!({"from": "", "part": part}).to_string(),
        ),
    ] {
        let r = client()
            .post(format!("{}/runs/h4/absorb", a.url()))
            .header("x-watchtower-peer", "1")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("absorb");
        assert_eq!(r.status().as_u16(), 400, "{what}");
    }
    let (_, after) = get(&format!("{}/runs/h4", a.url()), true).await;
    assert_eq!(after["totals"], s["totals"], "nothing was absorbed");
}

/// With a static peers list, a stopped replica's address stays listed and does not answer;
/// it handed its part over as it stopped, so the answers are whole and nobody is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_of_a_static_tier_is_not_missing_once_its_part_is_handed_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tier = static_tier(dir.path(), "s", 3).await;
    run_cmd_ok("run-start", &tier[0].url(), "st1");
    for (r, n) in tier.iter().zip([10, 20, 40]) {
        send_spans(r, "svc", n, None).await;
    }
    tier[2].stop();
    for r in &tier[..2] {
        assert_whole(r, "st1", 70).await;
    }
    run_cmd_ok("run-end", &tier[1].url(), "st1");
    assert_whole(&tier[0], "st1", 70).await;
}

/// Two replicas stopped at the same moment (a scale-down by two) hand their parts to the two
/// that stay, not to each other (a stopping replica takes none) and lose none, for every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_stopped_together_hand_their_parts_to_those_that_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tier = static_tier(dir.path(), "t", 4).await;
    let runs: Vec<String> = (0..8).map(|i| format!("tt{i}")).collect();
    for id in &runs {
        run_cmd_ok("run-start", &tier[0].url(), id);
    }
    for id in &runs {
        for (r, n) in tier.iter().zip([1, 2, 4, 8]) {
            send_spans(r, "svc", n, Some(id)).await;
        }
    }
    tier[2].term();
    tier[3].term();
    tier[2].stop();
    tier[3].stop();
    for id in &runs {
        for r in &tier[..2] {
            assert_whole(r, id, 15).await;
        }
    }
}

/// Peers lists that leave each replica itself out: the replica that ran `run-start` knows no
/// address of its own, yet once it stopped and handed its part over, the others, which saw it
/// answer at its address, do not name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_missing_from_its_own_peers_list_is_not_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = [free_port(), free_port(), free_port()];
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let mut tier: Vec<Replica> = (0..3)
        .map(|i| {
            let others: Vec<String> = (0..3).filter(|&j| j != i).map(addr).collect();
            Replica::new(dir.path(), &format!("o{i}"), "127.0.0.1", ports[i], &others)
        })
        .collect();
    up_all(&mut tier).await;
    run_cmd_ok("run-start", &tier[0].url(), "os1");
    for (r, n) in tier.iter().zip([10, 20, 40]) {
        send_spans(r, "svc", n, None).await;
    }
    // the others read the run (and so see who answers where) before the initiator stops
    for r in &tier[1..] {
        let (_, s) = get(&format!("{}/runs/os1", r.url()), false).await;
        assert_eq!(u(&s["totals"]["spans"]), 70, "{s}");
    }
    tier[0].stop();
    for r in &tier[1..] {
        assert_whole(r, "os1", 70).await;
    }
}

/// A part that no peer took is lost (b's only peer, a, was killed), and so is a's; both
/// restarted in place (same address, a new id, a part that begins then) do not hide that:
/// every answer names both. Before, a part answering from the same address covered the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_no_peer_took_is_named_after_a_restart_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = [free_port(), free_port(), free_port()];
    let all = ports.map(|p| format!("127.0.0.1:{p}"));
    let mut a = Replica::new(dir.path(), "a", "127.0.0.1", ports[0], &all);
    let mut b = Replica::new(dir.path(), "b", "127.0.0.1", ports[1], &all[..2]);
    let mut c = Replica::new(dir.path(), "c", "127.0.0.1", ports[2], &all);
    up(&mut [&mut a, &mut b, &mut c]).await;
    run_cmd_ok("run-start", &c.url(), "np1");
    send_spans(&a, "svc", 10, None).await;
    send_spans(&b, "svc", 20, None).await;
    send_spans(&c, "svc", 40, None).await;
    a.kill();
    b.stop();
    a.spawn();
    a.ready().await;
    b.spawn();
    b.ready().await;
    send_spans(&b, "svc", 1, None).await;
    let mut both = vec![a.addr(), b.addr()];
    both.sort();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, s) = get(&format!("{}/runs/np1", c.url()), false).await;
        if u(&s["totals"]["spans"]) == 41 {
            assert_eq!(
                (&s["partial"], &s["missing_replicas"]),
                (&Value::Bool(true), &serde_json::json!(both)),
                "{s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the new span never counted: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The addresses in a summary's `holders` (empty for a holder named by id only).
fn holder_addresses(s: &Value) -> BTreeSet<String> {
    s["holders"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|h| h["address"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Holders are replicas, not addresses: with peers lists that leave each replica itself out,
/// nothing is missing after the end; the replica that ran `run-end` (unknown by address to
/// itself) is named by its id once its part is gone; one restarted with its `directory` keeps
/// its id, so its part is its own again and nothing is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_are_replicas_whatever_their_peers_lists_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (free_port(), free_port());
    let keep = dir.path().join("b-runs");
    std::fs::create_dir_all(&keep).expect("dir");
    let mut a = Replica::new(
        dir.path(),
        "a",
        "127.0.0.1",
        pa,
        &[format!("127.0.0.1:{pb}")],
    );
    let mut b = Replica::with_runs(
        dir.path(),
        "b",
        pb,
        &[format!("127.0.0.1:{pa}")],
        &format!(", directory: \"{}\", flush_interval: 100ms", keep.display()),
    );
    up(&mut [&mut a, &mut b]).await;
    run_cmd_ok("run-start", &a.url(), "h2");
    send_spans(&a, "svc", 10, None).await;
    send_spans(&b, "svc", 20, None).await;
    run_cmd_ok("run-end", &a.url(), "h2");
    for r in [&a, &b] {
        let (code, s) = get(&format!("{}/runs/h2", r.url()), false).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(
            (u(&s["totals"]["spans"]), &s["partial"]),
            (30, &Value::Bool(false)),
            "asked of {}: {s}",
            r.addr()
        );
        assert_eq!(s["holders"].as_array().map(Vec::len), Some(2), "{s}");
    }
    // b restarts with its directory: the same replica, nothing missing
    b.kill();
    b.spawn();
    b.ready().await;
    let (code, s) = get(&format!("{}/runs/h2", a.url()), false).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (u(&s["totals"]["spans"]), &s["partial"]),
        (30, &Value::Bool(false)),
        "{s}"
    );
    // a restarts without one: its part is gone, and b names it by its id
    let a_id = s["holders"]
        .as_array()
        .and_then(|l| l.iter().find(|h| h.get("address").is_none()))
        .and_then(|h| h["replica"].as_str())
        .map(String::from)
        .unwrap_or_else(|| panic!("a is a holder without an address: {s}"));
    a.kill();
    a.spawn();
    a.ready().await;
    let (code, s) = get(&format!("{}/runs/h2", b.url()), false).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(u(&s["totals"]["spans"]), 20, "{s}");
    assert_eq!(
        s["missing_replicas"],
        serde_json::json!([format!("replica {a_id}")]),
        "{s}"
    );
}
