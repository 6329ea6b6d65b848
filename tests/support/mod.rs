//! Shared test harness: in-process OTLP destinations (HTTP and gRPC) that decode what
//! arrives and can be scripted to fail, hang or answer slowly; a gateway child process with
//! a generated config on free loopback ports; self-metrics scraping; the Python SDK sender.
#![allow(dead_code)]

pub mod capture;
pub mod gateway;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free 127.0.0.1 port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Python interpreter with the OpenTelemetry SDK (`make test` builds the venv).
pub fn python() -> String {
    if let Ok(p) = std::env::var("WATCHTOWER_PYTHON") {
        return p;
    }
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(local).exists() {
        return local.to_string();
    }
    panic!("WATCHTOWER_PYTHON is not set and .venv is missing: run `make test` (it creates the venv)");
}

/// A reqwest client (installs the crypto provider reqwest is built without).
pub fn client() -> reqwest::Client {
    watchtower::install_crypto_provider();
    reqwest::Client::new()
}
