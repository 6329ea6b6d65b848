//! The `watchtower-bench` binary as the benchmark drivers use it (benches/run.py): `sink` on
//! free ports prints its addresses, `loadgen` sends a fixed number of requests and reports them
//! as JSON with exit code 0, the sink prints its counts when it is stopped with SIGTERM, and
//! `floor` answers every OTLP request with success on both protocols.
//! The binary is the one Cargo builds for this package's integration tests.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_watchtower-bench");

/// The value of `key=` in the sink's `sink listening grpc=... http=...` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Command-line words of `s`, split at spaces.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ')
}

/// Waits up to 10 s for `child` to exit, killing it past that.
fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("{BIN} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sink_and_loadgen_subcommands_count_the_same_items() {
    let mut sink = Command::new(BIN)
        .args(["sink", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sink.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("sink listening "), "{line:?}");
    assert_eq!(field(&line, "prw"), "-", "{line:?}");
    let grpc = field(&line, "grpc").to_string();
    let http = field(&line, "http").to_string();

    for (endpoint, protocol, signal) in [
        (grpc, "grpc", "traces"),
        (format!("http://{http}"), "http", "logs"),
    ] {
        let out = Command::new(BIN)
            .args(["loadgen", "--endpoint", &endpoint, "--protocol", protocol])
            .args(["--signal", signal])
            .args(words("--requests 12 --items-per-request 25"))
            .args(words("--connections 2"))
            .args(words("--duration 30 --json - --quiet"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{protocol}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["items"]["accepted"], 300, "{report}");
        assert_eq!(report["requests"]["failed"], 0, "{report}");
        assert_eq!(report["signal"], signal, "{report}");
    }

    let term = Command::new("kill")
        .args(["-TERM", &sink.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(wait_bounded(&mut sink).success());
    let mut err = String::new();
    let mut stderr = sink.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    let counts: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(counts["traces"]["items"], 300, "{counts}");
    assert_eq!(counts["logs"]["items"], 300, "{counts}");
    assert_eq!(counts["traces"]["requests"], 12, "{counts}");
    assert_eq!(counts["bad_requests"], 0, "{counts}");
}

#[test]
fn loadgen_that_cannot_deliver_exits_non_zero() {
    // a port nothing listens on: every request fails, the exit code says so
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["loadgen", "--endpoint", &format!("http://127.0.0.1:{port}")])
        .args(words("--protocol http --requests 3 --connections 1"))
        .args(words("--timeout 2 --duration 20 --json - --quiet"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["items"]["accepted"], 0, "{report}");
    assert_eq!(report["requests"]["failed"], 3, "{report}");
}

#[test]
fn floor_answers_every_otlp_request_with_success_on_both_protocols() {
    let mut floor = Command::new(BIN)
        .args(["floor", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(floor.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("floor listening ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    for (endpoint, protocol) in [(addr.clone(), "grpc"), (format!("http://{addr}"), "http")] {
        let out = Command::new(BIN)
            .args(["loadgen", "--endpoint", &endpoint, "--protocol", protocol])
            .args(words(
                "--signal traces --requests 12 --items-per-request 25",
            ))
            .args(words("--connections 1 --duration 30 --json - --quiet"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{protocol}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["items"]["accepted"], 300, "{protocol}: {report}");
        assert_eq!(report["requests"]["failed"], 0, "{protocol}: {report}");
    }
    let _ = floor.kill();
    let _ = floor.wait();
}
