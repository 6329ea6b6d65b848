//! The command line: `validate` on good and bad configs (every error, with its location,
//! non-zero exit), `--help` on every subcommand, `--version`, `default-config`.

use std::process::Command;

fn wt(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(args)
        .env_remove("WATCHTOWER_TEMPO_ENDPOINT")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn config_takes_a_path_or_a_file_uri_as_the_collector_does() {
    let f = write(
        "receivers: { otlp: { protocols: { grpc: } } }\nexporters: { debug: }\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }\n",
    );
    let uri = format!("file:{}", f.path().to_str().unwrap());
    assert_eq!(wt(&["validate", "--config", &uri]), (0, "ok\n".to_string()));
    let (code, out) = wt(&["validate", "--config", "env:WATCHTOWER_CFG"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("env: config URIs are not supported"), "{out}");
}

#[test]
fn validate_accepts_a_good_config() {
    let f = write(
        "receivers: { otlp: { protocols: { grpc: , http: } } }\nprocessors: { batch: {} }\nexporters:\n  otlphttp/tempo: { endpoint: http://tempo:4318 }\n  debug: { verbosity: basic }\nservice:\n  pipelines:\n    traces: { receivers: [otlp], processors: [batch], exporters: [otlphttp/tempo, debug] }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "ok"));
}

#[test]
fn validate_reports_every_error_with_location() {
    let f = write(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n        max_recv_msg_size: 4\nexporters:\n  otlphttp:\n    endpoint: \"${env:WT_TEST_UNSET_VAR}\"\n  zipkin: {}\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp] }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        out.contains("line 9") && out.contains("WT_TEST_UNSET_VAR"),
        "{out}"
    );
    let f = write(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n        max_recv_msg_size: 4\nexporters:\n  otlphttp:\n    endpoint: http://x\n  zipkin: {}\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp, debug] }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        out.contains("max_recv_msg_size") && out.contains("line 6"),
        "{out}"
    );
    assert!(
        out.contains("unknown exporter type \"zipkin\"") && out.contains("line 10"),
        "{out}"
    );
    assert!(out.contains("exporter \"debug\" is not defined"), "{out}");
    assert_eq!(out.lines().count(), 3, "one line per error: {out}");
    let (code, out) = wt(&["validate", "--config", "/nonexistent/x.yaml"]);
    assert_ne!(code, 0);
    assert!(out.contains("cannot read"), "{out}");
}

#[test]
fn validate_names_the_key_path_of_every_bad_value_in_a_component() {
    let f = write(
        "receivers: { otlp: { protocols: { grpc: } } }\nexporters:\n  otlp/x:\n    endpoint: backup:4317\n    retry_on_failure:\n      max_interval: 5x\n      initial_interval: 1s\n    timeout: forever\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [otlp/x] } } }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one line per bad value: {out}");
    assert!(
        lines[0].starts_with(
            "line 6 column 21: exporters.otlp/x.retry_on_failure.max_interval: unknown unit \"x\" in duration \"5x\""
        ),
        "{out}"
    );
    assert!(
        lines[1].starts_with("line 8 column 14: exporters.otlp/x.timeout: "),
        "{out}"
    );
}

#[test]
fn validate_without_config_checks_the_built_in_default() {
    let (code, out) = wt(&["validate"]);
    assert_eq!((code, out.trim()), (0, "ok"));
    let (code, out) = wt(&["default-config"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("debug") && out.contains("0.0.0.0:4317") && out.contains("health_check"),
        "{out}"
    );
}

#[test]
fn help_and_version() {
    let (code, out) = wt(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("watchtower "), "{out}");
    let (code, out) = wt(&["--help"]);
    assert_eq!(code, 0);
    let subcommands: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(
        subcommands.contains(&"run".to_string()) && subcommands.contains(&"validate".to_string()),
        "{out}"
    );
    for c in &subcommands {
        let (code, out) = wt(&[c, "--help"]);
        assert_eq!(code, 0, "{c} --help");
        assert!(out.contains("Usage:"), "{c}: {out}");
    }
}

/// `run` refuses what `validate` refuses: an exporter no pipeline uses still has to build
/// (it used to start, while `validate` said the file was wrong).
#[test]
fn run_refuses_an_unused_exporter_that_validate_refuses() {
    let f = write(
        "receivers: { otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } } }\nexporters:\n  debug:\n  otlphttp/unused: { endpoint: \"htp://bad\" }\nextensions: { health_check: { endpoint: 127.0.0.1:0 } }\nservice:\n  extensions: [health_check]\n  telemetry: { metrics: { address: \"\" } }\n  pipelines: { traces: { receivers: [otlp], exporters: [debug] } }\n",
    );
    let path = f.path().to_str().unwrap();
    let (code, out) = wt(&["validate", "--config", path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("exporters.otlphttp/unused"), "{out}");
    // exits at once with the same message (a gateway that starts is killed after 10 s)
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["run", "--config", path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("run started with an exporter that validate refuses");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("line 4: exporters.otlphttp/unused: URL \"htp://bad/v1/traces\" must start with http:// or https://"),
        "{text}"
    );
}

/// A command whose reader leaves (`watchtower ... | head -1`) ends quietly, by SIGPIPE as Unix
/// tools do, never with a panic and a backtrace.
#[test]
fn a_command_piped_into_a_reader_that_leaves_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .arg("default-config")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // the reader leaves before the command writes (it is still starting up)
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

/// Endpoint mistakes are named for what they are, on the line they are written on, also in
/// flow mappings (`grpc: { endpoint: ... }`, as the README's examples write them).
#[test]
fn validate_explains_endpoint_shapes_on_their_own_lines() {
    let f = write(
        "receivers:\n  otlp:\n    protocols:\n      grpc: { endpoint: \"localhost:99999\" }\n      http: { endpoint: \"http://127.0.0.1:4318\" }\nexporters:\n  otlphttp/a: { endpoint: \"tempo:4318\" }\n  loki: { endpoint: \"not a url\" }\nservice:\n  telemetry: { metrics: { address: \"8888\" } }\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp/a] }\n    metrics: { receivers: [otlp], exporters: [otlphttp/a] }\n    logs: { receivers: [otlp], exporters: [loki] }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "line 4: receivers.otlp.protocols.grpc.endpoint: port 99999 is out of range",
        "line 5: receivers.otlp.protocols.http.endpoint: is a URL; a listening endpoint is host:port without a scheme",
        "line 8: exporters.loki.endpoint: must be a URL (for example http://loki:3100/loki/api/v1/push)",
        "line 10: service.telemetry.metrics.address: must be host:port",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // the exporter build's own check names the missing scheme (a second pass: the file's
    // shape errors come first)
    let f = write(
        "receivers: { otlp: { protocols: { grpc: } } }\nexporters:\n  otlphttp/a: { endpoint: \"tempo:4318\" }\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [otlphttp/a] }\n",
    );
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("has no scheme: an otlphttp endpoint is a URL such as http://tempo:4318"),
        "{out}"
    );
}

/// `service.telemetry.logs.encoding: json` writes one JSON object per log line (the
/// Collector's `encoding` key), for log pipelines such as Loki's.
#[test]
fn json_log_encoding_writes_one_object_per_line() {
    use std::io::BufRead;
    let f = write(
        "receivers: { otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } } }\nexporters: { debug: }\nservice:\n  telemetry: { logs: { encoding: json, level: info }, metrics: { address: \"\" } }\n  pipelines: { traces: { receivers: [otlp], exporters: [debug] } }\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["run", "--config", f.path().to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut ready = None;
    for line in lines.by_ref().take(20) {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("ready"))
        {
            ready = Some(v);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let v = ready.expect("a ready line");
    assert_eq!(v["level"], "INFO");
    assert!(v["timestamp"].is_string());
}

/// `validate` opens what `run` would open: a missing certificate or htpasswd file and a
/// directory under a regular file are named, with their lines (they passed, and `run` failed).
#[test]
fn validate_checks_the_files_and_directories_a_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    let f = write(&format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:0, tls: {{ cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem }} }}\nexporters: {{ debug: }}\nextensions:\n  basicauth/in: {{ htpasswd: {{ file: /nonexistent/htpasswd }} }}\n  runs: {{ directory: {}/runs }}\nservice:\n  extensions: [runs]\n  pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}\n",
        plain.display()
    ));
    let (code, out) = wt(&["validate", "--config", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "line 4: receivers.otlp.protocols.grpc.tls.cert_file: /nonexistent/c.pem: No such file",
        "line 4: receivers.otlp.protocols.grpc.tls.key_file:",
        "line 7: extensions.basicauth/in.htpasswd.file:",
        "line 8: extensions.runs.directory:",
        "is not a directory",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // a directory that does not exist yet is fine: run creates it
    let f = write(&format!(
        "receivers: {{ otlp: {{ protocols: {{ grpc: }} }} }}\nexporters: {{ debug: }}\nextensions: {{ runs: {{ directory: {}/new/runs }} }}\nservice:\n  extensions: [runs]\n  pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}\n",
        dir.path().display()
    ));
    assert_eq!(
        wt(&["validate", "--config", f.path().to_str().unwrap()]),
        (0, "ok\n".to_string())
    );
}

/// A `memory_limiter` given as `limit_percentage` is resolved at start: `run` refuses to start
/// when the receivers' admission budgets do not fit under the resolved soft limit (the check
/// `validate` makes for `limit_mib`), and `validate` refuses a spike at or above the limit.
#[test]
fn run_checks_the_admission_budgets_against_a_resolved_percentage() {
    // 1% of this machine's memory (well under 4 GiB on any test machine) against 4 GiB of
    // admission budget
    let f = write(
        "receivers:\n  otlp:\n    protocols: { http: { endpoint: 127.0.0.1:0 } }\n    admission: { request_limit_mib: 4096, waiting_limit_mib: 16 }\nprocessors:\n  memory_limiter: { limit_percentage: 1 }\nexporters: { debug: }\nservice:\n  telemetry: { metrics: { address: \"\" } }\n  pipelines: { traces: { receivers: [otlp], processors: [memory_limiter], exporters: [debug] } }\n",
    );
    let path = f.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["run", "--config", path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let out = out.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("processors.memory_limiter: the admission budgets")
            && text.contains("otlp: 4112 MiB")
            && text.contains("limit_percentage"),
        "{text}"
    );
    // validate resolves the percentage on this machine too, and refuses the same config
    let (code, out) = wt(&["validate", "--config", path]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("processors.memory_limiter") && out.contains("otlp: 4112 MiB"),
        "{out}"
    );
    let g = write(
        "receivers: { otlp: { protocols: { http: } } }\nprocessors:\n  memory_limiter: { limit_percentage: 40, spike_limit_percentage: 50 }\nexporters: { debug: }\nservice:\n  pipelines: { traces: { receivers: [otlp], processors: [memory_limiter], exporters: [debug] } }\n",
    );
    let (code, out) = wt(&["validate", "--config", g.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("spike_limit_percentage must be smaller than limit_percentage"),
        "{out}"
    );
}
