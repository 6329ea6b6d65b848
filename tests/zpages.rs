//! The zpages extension end to end, in process: the status graph names every configured
//! component and its counters rise, the tap streams filtered items and a slow viewer loses
//! items (as a gap) while every destination still receives everything, recent data filters
//! and stays in budget, and no API answer carries a configured secret.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::capture::Capture;
use support::{client, post_protobuf, trace_request, wait_until};
use watchtower::app::App;

const SECRET_TOKEN: &str = "ZaVnSECRETTOKEN42";
const SECRET_HEADER: &str = "Bearer sekrit-header-value";

async fn start(dest: &Capture, zpages_extra: &str) -> App {
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:0 }}\n  otlp/second:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:0 }}\n\
processors:\n  batch: {{ timeout: 10ms }}\n\
exporters:\n  otlphttp/dest:\n    endpoint: {}\n    headers: {{ Authorization: \"{SECRET_HEADER}\" }}\n  otlphttp/sumo:\n    endpoint: http://me:pa55word@127.0.0.1:9/receiver/v1/otlp/{SECRET_TOKEN}\n    retry_on_failure: {{ enabled: false }}\n\
extensions:\n  zpages: {{ endpoint: 127.0.0.1:0 {zpages_extra} }}\n\
service:\n  extensions: [zpages]\n  telemetry: {{ metrics: {{ address: \"\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp, otlp/second], processors: [batch], exporters: [otlphttp/dest] }}\n    logs/sumo: {{ receivers: [otlp], exporters: [otlphttp/sumo] }}\n",
        dest.url()
    );
    let cfg = watchtower::config::parse(&text, &|_| None).expect("config");
    App::start(cfg).await.expect("start")
}

fn zurl(app: &App, path: &str) -> String {
    format!("http://{}{}", app.bound.zpages.expect("zpages bound"), path)
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().await.expect("get");
    let st = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Reads NDJSON lines from a streaming response until `n` item lines or `timeout`.
async fn read_lines(r: &mut reqwest::Response, n: usize, timeout: Duration) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + timeout;
    while out
        .iter()
        .filter(|v: &&Value| v.get("signal").is_some())
        .count()
        < n
    {
        let chunk = match tokio::time::timeout_at(end, r.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push(serde_json::from_slice(&line).expect("each line is JSON"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_graph_and_counts() {
    let dest = Capture::http().await;
    let app = start(&dest, "").await;
    let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
    for r in 0..4 {
        let (st, _, _) = post_protobuf(&url, trace_request("checkout", r * 10, 5)).await;
        assert_eq!(st, 200);
    }
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 20).await);
    // rates are sampled once a second
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (st, s) = get_json(&zurl(&app, "/api/v1/status")).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = s["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["logs/sumo", "traces"]);
    assert_eq!(
        s["pipelines"][1]["receivers"],
        serde_json::json!(["otlp", "otlp/second"])
    );
    assert_eq!(s["receivers"]["otlp"]["signals"]["traces"]["accepted"], 20);
    assert_eq!(
        s["receivers"]["otlp/second"]["transports"],
        serde_json::json!(["grpc"])
    );
    assert_eq!(s["processors"]["batch"]["type"], "batch");
    let d = &s["exporters"]["otlphttp/dest"];
    assert_eq!(d["signals"]["traces"]["sent"], 20);
    assert_eq!(d["queue"]["capacity_requests"], 1000);
    assert_eq!(d["destination"]["state"], "healthy");
    assert!(s["exporters"]["otlphttp/sumo"].is_object());
    assert_eq!(s["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(s["uptime_seconds"].as_f64().unwrap() > 1.0);
    assert_eq!(s["recent"]["enabled"], true);
    // the Collector's debug pages name the components too
    let pz = get_text(&zurl(&app, "/debug/pipelinez")).await;
    assert!(pz.contains("logs/sumo") && pz.contains("otlphttp/dest") && pz.contains("otlp/second"));
    assert!(
        get_text(&zurl(&app, "/debug/extensionz"))
            .await
            .contains("zpages")
    );
    assert!(
        get_text(&zurl(&app, "/debug/servicez"))
            .await
            .contains(env!("CARGO_PKG_VERSION"))
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_streams_filtered_items_at_receivers_and_exporters() {
    let dest = Capture::http().await;
    let app = start(&dest, "").await;
    let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
    let mut rx = client()
        .get(zurl(
            &app,
            "/api/v1/tap?signal=traces&service=checkout&limit=3",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(rx.status(), 200);
    let mut ex = client()
        .get(zurl(
            &app,
            "/api/v1/tap?component=exporter/otlphttp/dest&match=span-1",
        ))
        .send()
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || app.metrics.observe.tap.viewers()
            == 2)
        .await
    );
    post_protobuf(&url, trace_request("cart", 100, 2)).await;
    post_protobuf(&url, trace_request("checkout", 10, 5)).await;
    let lines = read_lines(&mut rx, 3, Duration::from_secs(10)).await;
    let items: Vec<&Value> = lines.iter().filter(|v| v.get("signal").is_some()).collect();
    assert_eq!(items.len(), 3);
    for it in &items {
        assert_eq!(it["service"], "checkout");
        assert_eq!(it["component"], "receiver/otlp");
        assert_eq!(
            it["otlp"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
            it["name"]
        );
    }
    assert_eq!(items[0]["name"], "span-10");
    // limit reached: the server ends the stream
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), rx.chunk()).await,
        Ok(Ok(None))
    ));
    let lines = read_lines(&mut ex, 5, Duration::from_secs(10)).await;
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|v| v.get("name").and_then(|n| n.as_str()))
        .collect();
    assert_eq!(
        names,
        ["span-100", "span-101", "span-10", "span-11", "span-12"]
    );
    assert!(
        lines
            .iter()
            .filter(|v| v.get("signal").is_some())
            .all(|v| v["component"] == "exporter/otlphttp/dest")
    );
    // bad filters are 400s naming the problem
    let (st, e) = get_json(&zurl(&app, "/api/v1/tap?signal=spans")).await;
    assert_eq!(st, 400);
    assert!(e["error"].as_str().unwrap().contains("signal"));
    let (st, _) = get_json(&zurl(&app, "/api/v1/tap?component=nope")).await;
    assert_eq!(st, 400);
    drop(ex);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_viewer_loses_items_and_destinations_get_everything() {
    let dest = Capture::http().await;
    let app = start(&dest, ", tap: { buffer_requests: 1 }").await;
    let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
    // a viewer that reads nothing while data flows
    let mut slow = client()
        .get(zurl(&app, "/api/v1/tap"))
        .send()
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || app.metrics.observe.tap.active()).await);
    let sends: Vec<_> = (0..120u64)
        .map(|r| post_protobuf(&url, trace_request("load", r * 50, 50)))
        .collect();
    for (st, _, _) in futures::future::join_all(sends).await {
        assert_eq!(st, 200, "the gateway never waits for a viewer");
    }
    assert!(
        wait_until(Duration::from_secs(20), || dest.span_count() == 6_000).await,
        "every destination receives everything ({} of 6000)",
        dest.span_count()
    );
    let lost = app.metrics.observe.tap.lost_items();
    assert!(lost > 0, "the slow viewer lost items");
    // the viewer sees the loss as a gap marker
    let mut gaps = 0;
    let mut seen = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = Vec::new();
    while tokio::time::Instant::now() < end && seen + gaps < 6_000 {
        match tokio::time::timeout_at(end, slow.chunk()).await {
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
            _ => break,
        }
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line).unwrap();
            if let Some(g) = v.get("gap") {
                gaps += g["lost_items"].as_u64().unwrap() as usize;
            } else if v.get("signal").is_some() {
                seen += 1;
            } else if v.get("heartbeat_unix_nano").is_some() {
                // idle: everything buffered was read
                break;
            }
        }
        if buf.is_empty() && seen + gaps == 6_000 {
            break;
        }
    }
    assert!(gaps > 0, "a gap marker was streamed");
    assert_eq!(gaps as u64, lost);
    assert_eq!(
        seen + gaps,
        6_000,
        "every item is either shown or counted as lost"
    );
    let (_, s) = get_json(&zurl(&app, "/api/v1/status")).await;
    assert_eq!(s["tap"]["lost_items"].as_u64(), Some(lost));
    drop(slow);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_filters_ids_and_budget() {
    let dest = Capture::http().await;
    let app = start(&dest, ", recent: { max_bytes: 30KiB }").await;
    let url = format!("http://{}/v1/traces", app.bound.http["otlp"]);
    for r in 0..40u64 {
        let svc = if r % 2 == 0 { "checkout" } else { "cart" };
        post_protobuf(&url, trace_request(svc, r * 10, 10)).await;
    }
    let (st, v) = get_json(&zurl(
        &app,
        "/api/v1/recent?signal=traces&service=cart&limit=5",
    ))
    .await;
    assert_eq!(st, 200);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i["service"] == "cart"));
    assert_eq!(items[4]["name"], "span-399", "newest last");
    let tid = items[0]["trace_id"].as_str().unwrap().to_string();
    let (_, v) = get_json(&zurl(&app, &format!("/api/v1/recent?trace_id={tid}"))).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["trace_id"], tid.as_str());
    let (_, s) = get_json(&zurl(&app, "/api/v1/status")).await;
    let held = s["recent"]["held_bytes"].as_u64().unwrap();
    assert!(
        held > 0 && held <= 30 * 1024,
        "ring within its budget: {held}"
    );
    // older requests were evicted
    let (_, v) = get_json(&zurl(&app, "/api/v1/recent?limit=1000")).await;
    let n = v["items"].as_array().unwrap().len();
    assert!(n > 0 && n < 400, "{n}");
    let (st, _) = get_json(&zurl(&app, "/api/v1/recent?trace_id=xyz")).await;
    assert_eq!(st, 400);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_in_config_view_or_apis() {
    let dest = Capture::http().await;
    let app = start(&dest, "").await;
    // a failed send to the Sumo-like destination records its (masked) error
    let url = format!("http://{}/v1/logs", app.bound.http["otlp"]);
    let body = {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    assert_eq!(post_protobuf(&url, body).await.0, 200);
    let mut status;
    assert!(
        {
            let end = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                status = get_json(&zurl(&app, "/api/v1/status")).await.1;
                if status["exporters"]["otlphttp/sumo"]["destination"]["last_error"].is_string()
                    || tokio::time::Instant::now() > end
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            status["exporters"]["otlphttp/sumo"]["destination"]["last_error"].is_string()
        },
        "{status}"
    );
    let mut answers = vec![status.to_string()];
    for path in [
        "/api/v1/config",
        "/debug/configz",
        "/api/v1/recent",
        "/debug/pipelinez",
        "/",
    ] {
        answers.push(get_text(&zurl(&app, path)).await);
    }
    for a in &answers {
        for s in [SECRET_TOKEN, "pa55word", "sekrit-header-value"] {
            assert!(!a.contains(s), "{s} leaked in {a}");
        }
    }
    let (_, cfgv) = get_json(&zurl(&app, "/api/v1/config")).await;
    assert_eq!(
        cfgv["exporters"]["otlphttp/sumo"]["endpoint"],
        "http://***@127.0.0.1:9/receiver/v1/otlp/***"
    );
    assert_eq!(
        cfgv["exporters"]["otlphttp/dest"]["headers"]["Authorization"],
        "***"
    );
    assert_eq!(cfgv["exporters"]["otlphttp/dest"]["endpoint"], dest.url());
    app.shutdown().await;
}

#[test]
fn zpages_config_is_checked() {
    let base = "receivers: { otlp: { protocols: { http: {} } } }\nexporters: { debug: {} }\n";
    let svc = "service:\n  extensions: [zpages]\n  pipelines: { traces: { receivers: [otlp], exporters: [debug] } }\n";
    let parse = |ext: &str| {
        watchtower::config::parse(
            &format!("{base}extensions:\n  zpages: {ext}\n{svc}"),
            &|_| None,
        )
    };
    let cfg = parse("{}").expect("defaults are valid");
    match cfg.extensions.get("zpages") {
        Some(watchtower::config::ExtensionConfig::Zpages(z)) => {
            assert_eq!(z.endpoint, "localhost:55679");
            assert!(z.recent.enabled);
            assert_eq!(z.recent.max_bytes.0, 16 << 20);
        }
        other => panic!("{other:?}"),
    }
    let e = parse("{ auth: { authenticator: bearertokenauth } }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("extensions.zpages") && e.contains("auth"), "{e}");
    let e = parse("{ endpoint: 'localhost:99999' }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("endpoint"), "{e}");
    let e = parse("{ tap: { buffer_requests: 0 } }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("buffer_requests"), "{e}");
    let e = parse("{ recnt: {} }").unwrap_err().to_string();
    assert!(e.contains("recnt"), "{e}");
    // the built-in config turns zpages (and its recent ring) on
    let builtin = watchtower::config::default::default_config(&|_| None);
    let cfg = watchtower::config::parse(&builtin, &|_| None).unwrap();
    assert!(cfg.service.extensions.iter().any(|e| e == "zpages"));
}

/// With `auth`, every zpages route (page, API, `/mcp`) needs the authenticator's credential:
/// none or a wrong one is a 401 with `WWW-Authenticate`, the right one is served, and the
/// `watchtower recent` command sends it from `WATCHTOWER_ZPAGES_AUTHORIZATION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zpages_auth_requires_the_credential() {
    let dest = Capture::http().await;
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:0 }}\n\
exporters:\n  otlphttp/dest: {{ endpoint: {} }}\n\
extensions:\n  bearertokenauth: {{ token: zp-secret-1 }}\n  zpages: {{ endpoint: 127.0.0.1:0, auth: {{ authenticator: bearertokenauth }} }}\n\
service:\n  extensions: [bearertokenauth, zpages]\n  telemetry: {{ metrics: {{ address: \"\" }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [otlphttp/dest] }}\n",
        dest.url()
    );
    let cfg = watchtower::config::parse(&text, &|_| None).expect("config");
    let app = App::start(cfg).await.expect("start");
    for path in [
        "/",
        "/api/v1/status",
        "/api/v1/recent?signal=traces",
        "/mcp",
    ] {
        for auth in [None, Some("Bearer wrong")] {
            let mut req = client().get(zurl(&app, path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.expect("get");
            assert_eq!(r.status().as_u16(), 401, "{path} with {auth:?}");
            assert!(r.headers().contains_key("www-authenticate"), "{path}");
        }
    }
    let r = client()
        .get(zurl(&app, "/api/v1/status"))
        .header("authorization", "Bearer zp-secret-1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let status: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
    assert!(
        status["pipelines"].to_string().contains("otlphttp/dest"),
        "{status}"
    );
    // the CLI: refused without the credential (exit 2), served with it (exit 0)
    let addr = app.bound.zpages.expect("zpages bound").to_string();
    let run = move |auth: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_watchtower"));
        c.args(["recent", "--signal", "traces", "--endpoint", &addr]);
        c.env_remove("WATCHTOWER_ZPAGES_AUTHORIZATION");
        if let Some(a) = auth {
            c.env("WATCHTOWER_ZPAGES_AUTHORIZATION", a);
        }
        c.output().expect("run watchtower recent")
    };
    let out = tokio::task::spawn_blocking(move || (run(None), run(Some("Bearer zp-secret-1"))))
        .await
        .expect("join");
    assert_eq!(
        out.0.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    assert!(String::from_utf8_lossy(&out.0.stderr).contains("401"));
    assert_eq!(
        out.1.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.1.stderr)
    );
    app.shutdown().await;
}
