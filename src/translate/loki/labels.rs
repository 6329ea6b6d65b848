//! Label names and label sets: OTLP attribute names -> Prometheus-style names (Loki's
//! `otlptranslator.NormalizeLabel`), nested maps flattened with `_`, and the stream selector
//! string `{a="b", c="d"}` that the push API carries (sorted by name, values quoted like Go's
//! `%q`, which is what Loki's `LabelSet.String()` produces and its label parser reads).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::borrow::Cow;

/// Resource attributes promoted to index labels by default: Loki's own list
/// (`DefaultOTLPResourceAttributesAsIndexLabels`, docs/loki.md) plus `test.run.id`, which
/// Watchtower stamps during a test run (one value per run, so its cardinality is the number
/// of runs) so that `{test_run_id="ID"}` selects a run's logs.
pub const DEFAULT_INDEX_LABELS: &[&str] = &[
    "test.run.id",
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Label names Loki looks at, in this order, for a `service_name` when none is given
/// (Loki `discover_service_name` default, docs/loki.md).
pub const SERVICE_NAME_DISCOVERY: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

pub const SERVICE_NAME: &str = "service_name";
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Loki's default `max_label_names_per_series`.
pub const LOKI_MAX_LABEL_NAMES: usize = 15;

/// `NormalizeLabel`: every char outside `[A-Za-z0-9_]` becomes `_` (one per char, runs are not
/// collapsed: as Loki's own source does); a leading
/// digit gets `key_`, a single leading `_` gets `key` (`__x` is kept). Borrowed when unchanged.
pub fn normalize(name: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if name.is_empty() {
        return Cow::Borrowed(name);
    }
    let needs_prefix =
        name.as_bytes()[0].is_ascii_digit() || (name.starts_with('_') && !name.starts_with("__"));
    if !needs_prefix && name.chars().all(valid) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        out.push(if valid(c) { c } else { '_' });
    }
    if out.as_bytes()[0].is_ascii_digit() {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    Cow::Owned(out)
}

/// `attributeToLabels`: one attribute -> `(name, value)` pairs. A map value is flattened
/// (`http={req:{id:1}}` -> `http_req_id="1"`); everything else is one pair with the value as
/// text (`AsString`).
pub fn flatten_attribute<'a>(kv: &'a KeyValue, out: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) {
    flatten_into(normalize(&kv.key), kv.value.as_ref(), out);
}

fn flatten_into<'a>(
    name: Cow<'a, str>,
    value: Option<&'a AnyValue>,
    out: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
) {
    if let Some(AnyValue {
        value: Some(Value::KvlistValue(map)),
    }) = value
    {
        for kv in &map.values {
            let child = normalize(&format!("{name}_{}", kv.key)).into_owned();
            flatten_into(Cow::Owned(child), kv.value.as_ref(), out);
        }
        return;
    }
    out.push((name, super::value::as_string(value)));
}

/// A stream's label set: `(name, value)` sorted by name, unique names, no empty values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet(Vec<(String, String)>);

impl LabelSet {
    pub fn new() -> Self {
        LabelSet(Vec::new())
    }

    /// Sets `name` unless it is already set (first writer wins). Empty values mean "absent"
    /// in Loki and Prometheus, so they are skipped.
    pub fn insert_if_absent(&mut self, name: &str, value: &str) {
        if name.is_empty() || value.is_empty() {
            return;
        }
        if let Err(pos) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.insert(pos, (name.to_string(), value.to_string()));
        }
    }

    /// Sets `name`, replacing an earlier value (`model.LabelSet.Merge`).
    pub fn insert_or_replace(&mut self, name: &str, value: &str) {
        if name.is_empty() || value.is_empty() {
            return;
        }
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(pos) => self.0[pos].1 = value.to_string(),
            Err(pos) => self.0.insert(pos, (name.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The selector string Loki expects: `{a="b", c="d"}`.
    pub fn to_selector(&self) -> String {
        let mut s = String::with_capacity(
            2 + self
                .0
                .iter()
                .map(|(n, v)| n.len() + v.len() + 6)
                .sum::<usize>(),
        );
        s.push('{');
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(n);
            s.push('=');
            quote_into(&mut s, v);
        }
        s.push('}');
        s
    }
}

/// Go `strconv.Quote` for the ASCII range (printable non-ASCII passes through, as in Go).
pub fn quote_into(out: &mut String, v: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
