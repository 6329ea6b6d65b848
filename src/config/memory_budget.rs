//! The memory budgets a config adds up to, checked against each `memory_limiter`: the
//! admission budgets of the receivers feeding it (`request_limit_mib + waiting_limit_mib`)
//! are memory committed before the limiter is asked, so their sum must fit under the
//! limiter's soft limit (`limit_mib - spike_limit_mib`). `validate` refuses a config where it
//! does not. Limiters given as `limit_percentage` are resolved at start and checked then
//! ([`check_resolved`]): `run` refuses to start.

use super::{Config, ProcessorConfig, ReceiverConfig};
use std::collections::BTreeSet;

/// One error per `memory_limiter` whose soft limit the receivers' budgets exceed, as
/// (key path, message).
pub fn check(cfg: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (id, p) in &cfg.processors {
        let ProcessorConfig::MemoryLimiter(m) = p else {
            continue;
        };
        if m.limit_mib == 0 {
            continue;
        }
        let spike = if m.spike_limit_mib == 0 {
            m.limit_mib / 5
        } else {
            m.spike_limit_mib
        };
        let soft = m.limit_mib.saturating_sub(spike);
        let (total, parts) = guarded_budgets(cfg, id);
        if total > soft {
            out.push((
                format!("processors.{id}"),
                format!(
                    "the admission budgets of the receivers it guards ({}; request_limit_mib + waiting_limit_mib each) add up to {total} MiB, above its soft limit of {soft} MiB (limit_mib - spike_limit_mib); lower receivers.<id>.admission or raise limit_mib",
                    parts.join(", ")
                ),
            ));
        }
    }
    out
}

/// The admission budgets (MiB) of the receivers whose pipelines memory limiter `id` guards:
/// their sum, and one `receiver: N MiB` per receiver.
pub fn guarded_budgets(cfg: &Config, id: &str) -> (u64, Vec<String>) {
    let receivers: BTreeSet<&String> = cfg
        .service
        .pipelines
        .values()
        .filter(|pl| pl.processors.iter().any(|p| p == id))
        .flat_map(|pl| pl.receivers.iter())
        .collect();
    let mut parts = Vec::new();
    let mut total = 0u64;
    for r in receivers {
        let Some(ReceiverConfig::Otlp(o)) = cfg.receivers.get(r) else {
            continue;
        };
        let mib = o.admission.budget_bytes() >> 20;
        total += mib;
        parts.push(format!("{r}: {mib} MiB"));
    }
    (total, parts)
}

/// For limiter `id` given as `limit_percentage`, resolved at start to `soft` bytes: the error
/// (without the key path) when the receivers it guards have admission budgets above it (the
/// check `validate` makes for `limit_mib`).
pub fn check_resolved(cfg: &Config, id: &str, soft: u64, source: &str) -> Result<(), String> {
    let (total, parts) = guarded_budgets(cfg, id);
    if total << 20 > soft {
        return Err(format!(
            "the admission budgets of the receivers it guards ({}; request_limit_mib + waiting_limit_mib each) add up to {total} MiB, above its soft limit of {} MiB (limit_percentage - spike_limit_percentage of {source}); lower receivers.<id>.admission or give the container more memory",
            parts.join(", "),
            soft >> 20
        ));
    }
    Ok(())
}

/// For `validate`: the limiters given as `limit_percentage` that `run` would refuse on this
/// machine (a total that cannot be read, an unreadable or unparsable cgroup or meminfo file;
/// or a resolved soft limit below the admission budgets, [`check_resolved`]), as (key path,
/// message), so `validate` fails where `run` would.
pub fn unresolvable(cfg: &Config) -> Vec<(String, String)> {
    cfg.processors
        .iter()
        .filter_map(|(id, p)| match p {
            ProcessorConfig::MemoryLimiter(m) if m.limit_mib == 0 => {
                match m.limits(&crate::processor::cgroup::Paths::default()) {
                    Err(e) => Some((format!("processors.{id}"), e.to_string())),
                    Ok(l) => check_resolved(cfg, id, l.soft, "this machine's memory")
                        .err()
                        .map(|e| (format!("processors.{id}"), e)),
                }
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    fn cfg(limiter: &str, admission: &str) -> Result<super::Config, String> {
        let t = format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: , http: }}{admission} }} }}\nprocessors: {{ memory_limiter: {limiter} }}\nexporters: {{ debug: }}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], processors: [memory_limiter], exporters: [debug] }} }} }}\n"
        );
        crate::config::parse(&t, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn default_budgets_fit_the_default_limit() {
        cfg("{ limit_mib: 512, spike_limit_mib: 128 }", "").unwrap();
        // 64 + 16 MiB fit 100 - 20
        cfg("{ limit_mib: 100 }", "").unwrap();
    }

    #[test]
    fn budgets_above_the_soft_limit_are_refused() {
        let e = cfg(
            "{ limit_mib: 128, spike_limit_mib: 28 }",
            ", admission: { request_limit_mib: 96, waiting_limit_mib: 8 }",
        )
        .unwrap_err();
        assert!(
            e.contains("processors.memory_limiter")
                && e.contains("104 MiB")
                && e.contains("100 MiB"),
            "{e}"
        );
    }

    #[test]
    fn disabled_admission_adds_nothing() {
        cfg("{ limit_mib: 32 }", ", admission: { request_limit_mib: 0 }").unwrap();
    }

    #[test]
    fn a_body_limit_above_the_budget_is_refused() {
        let t = "receivers: { otlp: { protocols: { http: { max_request_body_size: 40MiB } }, admission: { request_limit_mib: 32, waiting_limit_mib: 0 } } }\nexporters: { debug: }\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }\n";
        let e = crate::config::parse(t, &|_| None).unwrap_err().to_string();
        assert!(e.contains("request_limit_mib"), "{e}");
    }
}
