//! Checks every network address in a config before anything binds or dials: listener
//! endpoints (`receivers.*.protocols.{grpc,http}.endpoint`, `extensions.health_check*.endpoint`,
//! `service.telemetry.metrics.address`) are `host:port` with a port in 0-65535; exporter
//! endpoints (`endpoint`, `traces_endpoint`, `metrics_endpoint`, `logs_endpoint`) are URLs or
//! `host:port` with a port in 1-65535. Each problem names its key path (the caller adds the
//! line); messages never repeat the configured value, which may carry a credential.

use serde_yaml::{Mapping, Value};

/// A problem: the key path and what is wrong.
pub type AddressError = (Vec<String>, String);

/// Whether port 0 (any free port) is meaningful: yes for a listener, no for a destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Listen,
    Dial,
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
}

/// `host:port`: host empty, a name, an IPv4 address or a bracketed IPv6 address.
fn check_host_port(ep: &str, role: Role) -> Result<(), String> {
    if role == Role::Listen && ep.contains("://") {
        return Err(
            "is a URL; a listening endpoint is host:port without a scheme (for example 0.0.0.0:4318)"
                .into(),
        );
    }
    let (host, port) = ep
        .rsplit_once(':')
        .ok_or("must be host:port (for example 0.0.0.0:4317)")?;
    check_port(port, role)?;
    if let Some(v6) = host.strip_prefix('[') {
        let inner = v6
            .strip_suffix(']')
            .ok_or("has an unclosed [ in its IPv6 address")?;
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "has an invalid IPv6 address".to_string())?;
    } else if host.contains(':') {
        return Err("has an IPv6 address without brackets (write [::1]:4317)".into());
    } else if !host.chars().all(is_host_char) {
        return Err("has an invalid host name".into());
    }
    Ok(())
}

fn check_port(port: &str, role: Role) -> Result<(), String> {
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err("has no numeric port".into());
    }
    match port.parse::<u64>() {
        Ok(0) if role == Role::Dial => Err("port 0 cannot be dialed (use 1-65535)".into()),
        Ok(n) if n <= 65535 => Ok(()),
        _ => Err(format!(
            "port {} is out of range ({}-65535)",
            port.trim_start_matches('0'),
            if role == Role::Dial { 1 } else { 0 }
        )),
    }
}

/// A destination: `scheme://host[:port][/path]` or `host:port`.
fn check_dial(ep: &str) -> Result<(), String> {
    if !ep.contains("://") {
        if !ep.contains(':') {
            return Err(
                "must be a URL (for example http://loki:3100/loki/api/v1/push) or, for the otlp exporter, host:port"
                    .into(),
            );
        }
        return check_host_port(ep, Role::Dial);
    }
    // the port is checked here so that its own message can name it
    let after = &ep[ep.find("://").map(|i| i + 3).unwrap_or(0)..];
    let authority = after.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let port = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => hostport.rsplit_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port {
        check_port(p, Role::Dial)?;
    }
    let url = reqwest::Url::parse(ep).map_err(|e| format!("is not a valid URL ({e})"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("is not a valid URL (no host)".into());
    }
    Ok(())
}

fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_mapping()?.get(key)
}

fn ids(root: &Mapping, section: &str) -> Vec<(String, Value)> {
    root.get(section)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn push(
    out: &mut Vec<AddressError>,
    path: &[&str],
    v: Option<&Value>,
    check: impl Fn(&str) -> Result<(), String>,
) {
    // an environment reference typed as a number or boolean: its text is what the setting
    // gets (`keypath::parse`), checked as such; anything else is the typed parse's error
    let text = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => return,
    };
    if let Err(e) = check(&text) {
        out.push((path.iter().map(|p| p.to_string()).collect(), e));
    }
}

/// Every address problem in a parsed (env-expanded) config.
pub fn check(root: &Mapping) -> Vec<AddressError> {
    let mut out = Vec::new();
    let listen = |s: &str| check_host_port(s, Role::Listen);
    for (id, v) in ids(root, "receivers") {
        for proto in ["grpc", "http"] {
            let ep = get(&v, "protocols")
                .and_then(|p| get(p, proto))
                .and_then(|p| get(p, "endpoint"));
            push(
                &mut out,
                &["receivers", &id, "protocols", proto, "endpoint"],
                ep,
                listen,
            );
        }
    }
    for (id, v) in ids(root, "extensions") {
        if crate::config::component_type(&id) == "health_check" {
            push(
                &mut out,
                &["extensions", &id, "endpoint"],
                get(&v, "endpoint"),
                listen,
            );
        }
    }
    let metrics = root
        .get("service")
        .and_then(|s| get(s, "telemetry"))
        .and_then(|t| get(t, "metrics"))
        .and_then(|m| get(m, "address"))
        .filter(|a| a.as_str() != Some(""));
    push(
        &mut out,
        &["service", "telemetry", "metrics", "address"],
        metrics,
        listen,
    );
    for (id, v) in ids(root, "exporters") {
        for key in [
            "endpoint",
            "traces_endpoint",
            "metrics_endpoint",
            "logs_endpoint",
        ] {
            push(
                &mut out,
                &["exporters", &id, key],
                get(&v, key).filter(|e| e.as_str() != Some("")),
                check_dial,
            );
        }
    }
    out
}

/// The listeners `run` would start (receivers some pipeline names, extensions in
/// `service.extensions`, the self-metrics endpoint), by key path and `host:port`.
fn listeners(cfg: &crate::config::Config) -> Vec<(Vec<String>, String)> {
    use crate::config::{ExtensionConfig, MetricsLevel, ReceiverConfig};
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for (id, r) in &cfg.receivers {
        let used = cfg
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.contains(id));
        let ReceiverConfig::Otlp(o) = r;
        if !used {
            continue;
        }
        if let Some(g) = &o.protocols.grpc {
            out.push((
                path(&["receivers", id, "protocols", "grpc", "endpoint"]),
                g.endpoint.clone(),
            ));
        }
        if let Some(h) = &o.protocols.http {
            out.push((
                path(&["receivers", id, "protocols", "http", "endpoint"]),
                h.endpoint.clone(),
            ));
        }
    }
    for id in &cfg.service.extensions {
        match cfg.extensions.get(id) {
            Some(ExtensionConfig::HealthCheck(h)) => {
                out.push((path(&["extensions", id, "endpoint"]), h.endpoint.clone()))
            }
            Some(ExtensionConfig::Zpages(z)) => {
                out.push((path(&["extensions", id, "endpoint"]), z.endpoint.clone()))
            }
            _ => {}
        }
    }
    let m = &cfg.service.telemetry.metrics;
    if !m.endpoint().is_empty() && m.level != MetricsLevel::None {
        let key = if m.readers.is_empty() {
            "address"
        } else {
            "readers"
        };
        out.push((
            path(&["service", "telemetry", "metrics", key]),
            m.endpoint(),
        ));
    }
    out
}

/// Two listeners of one config on the same port (not 0) where their hosts overlap (equal, or
/// either one a wildcard): `run` would fail at the second bind, so `validate` says so first.
pub fn clashes(cfg: &crate::config::Config) -> Vec<AddressError> {
    fn host_port(ep: &str) -> Option<(String, u16)> {
        let (h, p) = ep.rsplit_once(':')?;
        let h = h.trim_start_matches('[').trim_end_matches(']');
        let h = if h == "localhost" { "127.0.0.1" } else { h };
        Some((h.to_string(), p.parse().ok()?))
    }
    let wildcard = |h: &str| matches!(h, "" | "0.0.0.0" | "::");
    let all = listeners(cfg);
    let mut out = Vec::new();
    for (i, (path, ep)) in all.iter().enumerate() {
        let Some((h, p)) = host_port(ep) else {
            continue;
        };
        if p == 0 {
            continue;
        }
        let earlier = all[..i].iter().find(|(_, e)| {
            host_port(e)
                .is_some_and(|(h2, p2)| p2 == p && (h2 == h || wildcard(&h) || wildcard(&h2)))
        });
        if let Some((first, _)) = earlier {
            out.push((
                path.clone(),
                format!(
                    "port {p} is also the port of {}: two listeners cannot share it",
                    first.join(".")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_endpoints() {
        for ok in [
            "0.0.0.0:4317",
            ":4318",
            "localhost:0",
            "[::1]:13133",
            "my-host.svc_1:65535",
        ] {
            assert_eq!(check_host_port(ok, Role::Listen), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("0.0.0.0:99999", "port 99999 is out of range (0-65535)"),
            ("0.0.0.0:", "has no numeric port"),
            ("not an address", "must be host:port"),
            ("a b:80", "invalid host name"),
            ("::1:4317", "without brackets"),
            ("[::1:4317", "unclosed ["),
            ("host:80x", "has no numeric port"),
            ("[zz]:1", "invalid IPv6"),
            (
                "http://127.0.0.1:4318",
                "is a URL; a listening endpoint is host:port",
            ),
        ] {
            let e = check_host_port(bad, Role::Listen).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn destination_endpoints() {
        for ok in [
            "http://tempo:4318",
            "https://user:pw@h/receiver/v1/otlp/tok",
            "collector:4317",
            "http://[::1]:9090/api/v1/write",
        ] {
            assert_eq!(check_dial(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            (
                "http://localhost:99999",
                "port 99999 is out of range (1-65535)",
            ),
            (
                "https://h:70000/receiver/v1/otlp/secret",
                "port 70000 is out of range",
            ),
            ("collector:0", "port 0 cannot be dialed"),
            ("http://", "not a valid URL"),
            ("http://a b/", "not a valid URL"),
            ("not a url", "must be a URL (for example http://"),
        ] {
            let e = check_dial(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("secret"), "echoes the value: {e}");
        }
    }
}
