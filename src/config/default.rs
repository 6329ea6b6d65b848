//! The built-in config `watchtower run` uses without `--config`: OTLP on :4317/:4318, a
//! `debug` exporter, health on :13133, self-metrics on :8888, plus one destination for each of
//! these environment variables that is set:
//!
//! | variable | exporter | pipelines |
//! |---|---|---|
//! | `WATCHTOWER_TEMPO_ENDPOINT` (e.g. `http://tempo:4318`) | `otlphttp/tempo` | traces |
//! | `WATCHTOWER_PROMETHEUS_ENDPOINT` (remote-write URL) | `prometheusremotewrite` | metrics |
//! | `WATCHTOWER_LOKI_ENDPOINT` (push URL) | `loki` | logs |
//! | `WATCHTOWER_OTLP_ENDPOINT` (any OTLP/HTTP base URL) | `otlphttp/default` | all |
//! | `WATCHTOWER_SUMO_ENDPOINT` (Sumo OTLP/HTTP source URL) | `otlphttp/sumo` (drop_oldest) | all |
//!
//! The `zpages` extension (status page, tap, recent data) listens on loopback
//! `localhost:55679` with a 16 MiB recent-data ring.
//!
//! `WATCHTOWER_DEBUG=off` removes the debug exporter when at least one destination is set.

/// Builds the default config text from an environment lookup.
pub fn default_config(lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    let mut exporters = vec![];
    let mut traces: Vec<&str> = vec![];
    let mut metrics: Vec<&str> = vec![];
    let mut logs: Vec<&str> = vec![];
    if let Some(ep) = get("WATCHTOWER_TEMPO_ENDPOINT") {
        exporters.push(format!(
            "  otlphttp/tempo:\n    endpoint: {}\n",
            yaml_str(&ep)
        ));
        traces.push("otlphttp/tempo");
    }
    if let Some(ep) = get("WATCHTOWER_PROMETHEUS_ENDPOINT") {
        exporters.push(format!(
            "  prometheusremotewrite:\n    endpoint: {}\n",
            yaml_str(&ep)
        ));
        metrics.push("prometheusremotewrite");
    }
    if let Some(ep) = get("WATCHTOWER_LOKI_ENDPOINT") {
        exporters.push(format!("  loki:\n    endpoint: {}\n", yaml_str(&ep)));
        logs.push("loki");
    }
    if let Some(ep) = get("WATCHTOWER_OTLP_ENDPOINT") {
        exporters.push(format!(
            "  otlphttp/default:\n    endpoint: {}\n",
            yaml_str(&ep)
        ));
        for v in [&mut traces, &mut metrics, &mut logs] {
            v.push("otlphttp/default");
        }
    }
    if let Some(ep) = get("WATCHTOWER_SUMO_ENDPOINT") {
        exporters.push(format!(
            "  otlphttp/sumo:\n    endpoint: {}\n    sending_queue: {{ full_policy: drop_oldest }}\n",
            yaml_str(&ep)
        ));
        for v in [&mut traces, &mut metrics, &mut logs] {
            v.push("otlphttp/sumo");
        }
    }
    let any_destination = !exporters.is_empty();
    let debug = !(any_destination && get("WATCHTOWER_DEBUG").is_some_and(|v| v == "off"));
    if debug {
        exporters.insert(0, "  debug: {}\n".to_string());
        for v in [&mut traces, &mut metrics, &mut logs] {
            v.insert(0, "debug");
        }
    }
    let list = |v: &[&str]| v.join(", ");
    let lines = [
        "# Watchtower built-in config (watchtower run without --config)".to_string(),
        "receivers:".into(),
        "  otlp:".into(),
        "    protocols:".into(),
        "      grpc: { endpoint: 0.0.0.0:4317 }".into(),
        "      http: { endpoint: 0.0.0.0:4318 }".into(),
        "processors:".into(),
        "  memory_limiter: { check_interval: 1s, limit_mib: 512, spike_limit_mib: 128 }".into(),
        "  batch: { timeout: 200ms, send_batch_size: 8192 }".into(),
        format!("exporters:\n{}", exporters.concat().trim_end()),
        "extensions:".into(),
        "  health_check: { endpoint: 0.0.0.0:13133 }".into(),
        "  zpages: { endpoint: localhost:55679, recent: { max_bytes: 16MiB } }".into(),
        "service:".into(),
        "  extensions: [health_check, zpages]".into(),
        "  telemetry: { metrics: { address: 0.0.0.0:8888 } }".into(),
        "  pipelines:".into(),
        format!(
            "    traces: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [{}] }}",
            list(&traces)
        ),
        format!(
            "    metrics: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [{}] }}",
            list(&metrics)
        ),
        format!(
            "    logs: {{ receivers: [otlp], processors: [memory_limiter, batch], exporters: [{}] }}",
            list(&logs)
        ),
    ];
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars; `$` doubled, so that the config's own
    // `${...}` resolution leaves an environment value as it is
    serde_json::to_string(&s.replace('$', "$$")).unwrap_or_else(|_| "\"\"".into())
}
