//! A gateway child process for tests: writes the config, starts `watchtower run`, waits for
//! health, scrapes self-metrics, and stops it with SIGTERM (or SIGKILL).

use super::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Gateway {
    pub child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    pub health_port: u16,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
}

pub fn binary() -> String {
    std::env::var("WATCHTOWER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchtower").to_string())
}

/// Pipeline section for all three signals with the given processors and exporters.
pub fn pipelines(processors: &str, exporters: &str) -> String {
    format!(
        "  pipelines:\n    traces: {{ receivers: [otlp], processors: [{processors}], exporters: [{exporters}] }}\n    metrics: {{ receivers: [otlp], processors: [{processors}], exporters: [{exporters}] }}\n    logs: {{ receivers: [otlp], processors: [{processors}], exporters: [{exporters}] }}\n"
    )
}

impl Gateway {
    /// Starts a gateway. `body` holds `processors:` / `exporters:` sections; `pipelines` the
    /// `service.pipelines` block (see [`pipelines`]). Receivers, health and metrics are added.
    pub async fn start(body: &str, pipelines: &str) -> Gateway {
        Self::start_with(body, pipelines, "").await
    }

    pub async fn start_with(body: &str, pipelines: &str, service_extra: &str) -> Gateway {
        Self::start_with_env(body, pipelines, service_extra, &[]).await
    }

    /// [`Self::start_with`] with extra environment variables for the gateway process.
    pub async fn start_with_env(
        body: &str,
        pipelines: &str,
        service_extra: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        // free ports are picked then released, so another process may take one first: a
        // gateway that exits during startup is retried on new ports
        let mut last_cfg = String::new();
        for _ in 0..3 {
            let (grpc_port, http_port, health_port, metrics_port) =
                (free_port(), free_port(), free_port(), free_port());
            let cfg = format!(
                "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{grpc_port} }}\n      http: {{ endpoint: 127.0.0.1:{http_port}, max_request_body_size: 1MiB }}\n{body}\nextensions:\n  health_check: {{ endpoint: 127.0.0.1:{health_port} }}\nservice:\n  extensions: [health_check]\n  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics_port} }} }}\n{service_extra}{pipelines}"
            );
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("config.yaml");
            std::fs::write(&path, &cfg).expect("write config");
            let child = Command::new(binary())
                .args(["run", "--config"])
                .arg(&path)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start gateway");
            let mut gw = Gateway {
                child,
                grpc_port,
                http_port,
                health_port,
                metrics_port,
                dir,
            };
            if gw.wait_healthy().await {
                return gw;
            }
            last_cfg = cfg;
        }
        panic!("gateway did not become healthy; config:\n{last_cfg}");
    }

    /// Waits for health 200; false if the process exited first.
    async fn wait_healthy(&mut self) -> bool {
        let url = format!("http://127.0.0.1:{}/", self.health_port);
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = super::client().get(&url).send().await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("gateway did not become healthy within 15 s");
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// All self-metrics samples as (name{labels}, value).
    pub async fn metrics(&self) -> Vec<(String, f64)> {
        let text = super::client()
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Sum of samples whose name is `name` and whose labels contain every `needle`.
    pub async fn metric(&self, name: &str, needles: &[&str]) -> f64 {
        self.metrics()
            .await
            .into_iter()
            .filter(|(k, _)| {
                (k == name || k.starts_with(&format!("{name}{{")))
                    && needles.iter().all(|n| k.contains(n))
            })
            .map(|(_, v)| v)
            .sum()
    }

    pub fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
