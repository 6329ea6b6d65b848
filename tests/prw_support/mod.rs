//! Shared by the `prw_*` integration tests: a real Prometheus started on a free 127.0.0.1
//! port with the remote-write receiver and native histograms on, killed on drop; PromQL
//! queries; OTLP request builders.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A plain HTTP client (reqwest is built without a default crypto provider).
pub fn client() -> reqwest::Client {
    watchtower::install_crypto_provider();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn prometheus_bin() -> String {
    std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/bin/prometheus").exists() {
            "/usr/bin/prometheus".into()
        } else {
            "prometheus".into()
        }
    })
}

/// A Prometheus server owned by the test.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on `port` (0 = pick one) and waits until it is ready.
    pub async fn start(port: u16) -> Prometheus {
        let port = if port == 0 { free_port() } else { port };
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").expect("write config");
        let log = dir.path().join("prometheus.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            // Prometheus 2.x: native histograms and exemplars are behind feature flags.
            .arg("--enable-feature=native-histograms,exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::from(logf))
            .spawn()
            .expect("start prometheus (apt-get install prometheus)");
        let p = Prometheus {
            port,
            child,
            _dir: dir,
            log,
        };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("http://127.0.0.1:{}/-/ready", self.port);
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "prometheus not ready on :{}; log:\n{}",
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Instant query; returns `data.result`.
    pub async fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            urlencode(q)
        );
        let r = client().get(&url).send().await.expect("query prometheus");
        let body = r.bytes().await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["status"], "success", "query {q}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `q` until it returns at least `n` results (or fails after 40 s: CI machines are busy).
    pub async fn query_until(&self, q: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let r = self.query(q).await;
            if r.len() >= n {
                return r;
            }
            if Instant::now() > deadline {
                panic!("query {q} returned {} results, wanted {n}: {r:?}", r.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The single float value of `q`.
    pub async fn value(&self, q: &str) -> f64 {
        let r = self.query_until(q, 1).await;
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        sample_value(&r[0])
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn sample_value(v: &serde_json::Value) -> f64 {
    let s = v["value"][1].as_str().expect("value string");
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().expect("float"),
    }
}

/// The labels of a result as sorted `k=v` strings.
pub fn labels_of(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One resource (service `checkout` in namespace `qa`, instance `i-1`, host `node-1`), one
/// scope, the given metrics.
pub fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "qa"),
                    kv("service.instance.id", "i-1"),
                    kv("host.name", "node-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "shop.metrics".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
