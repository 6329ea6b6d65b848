//! Label sets: OTLP attributes -> sanitized, collision-joined, sorted Prometheus labels, and
//! the per-resource/per-scope labels (`job`, `instance`, promoted resource attributes,
//! external labels, `otel_scope_*`) merged in the precedence order of Prometheus' translator.

use super::naming::label_name;
use crate::proto::prometheus::Label;
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

pub const JOB: &str = "job";
pub const INSTANCE: &str = "instance";
pub const NAME: &str = "__name__";
pub const SCOPE_NAME: &str = "otel_scope_name";
pub const SCOPE_VERSION: &str = "otel_scope_version";
pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_NAMESPACE: &str = "service.namespace";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// An attribute value as a label value: strings as is, numbers and bools in their usual text
/// form, bytes base64, arrays and maps as JSON.
pub fn value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value;
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => super::naming::format_float(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => {
            to_json(v.and_then(|v| v.value.as_ref())).to_string()
        }
        Some(Value::StringValueStrindex(_)) | None => String::new(),
    }
}

fn to_json(v: Option<&any_value::Value>) -> serde_json::Value {
    use any_value::Value;
    use serde_json::Value as J;
    match v {
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(super::naming::format_float(*d))),
        Some(Value::BytesValue(b)) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|x| to_json(x.value.as_ref())).collect())
        }
        Some(Value::KvlistValue(m)) => J::Object(
            m.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        to_json(kv.value.as_ref().and_then(|x| x.value.as_ref())),
                    )
                })
                .collect(),
        ),
        Some(Value::StringValueStrindex(_)) | None => J::Null,
    }
}

/// Finds a string-ish attribute by key.
pub fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Sanitizes attribute keys, drops empty values, unusable names and `skip` keys, and joins
/// the values of keys that collapse to the same label with `;` in the order of the original
/// keys. The result is sorted by name with unique names.
pub fn attributes_to_labels(attrs: &[KeyValue], skip: &[&str]) -> Vec<Label> {
    let mut tmp: Vec<(String, &str, String)> = Vec::with_capacity(attrs.len());
    for kv in attrs {
        if skip.contains(&kv.key.as_str()) {
            continue;
        }
        let value = value_string(kv.value.as_ref());
        if value.is_empty() {
            continue;
        }
        let Ok(name) = label_name(&kv.key) else {
            continue;
        };
        if name == NAME {
            continue;
        }
        tmp.push((name, kv.key.as_str(), value));
    }
    let sorted = tmp.windows(2).all(|w| w[0].0 < w[1].0);
    if !sorted {
        tmp.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    }
    let mut out: Vec<Label> = Vec::with_capacity(tmp.len() + 6);
    for (name, _, value) in tmp {
        match out.last_mut() {
            Some(last) if last.name == name => {
                last.value.push(';');
                last.value.push_str(&value);
            }
            _ => out.push(Label { name, value }),
        }
    }
    out
}

/// Labels contributed by a resource and a scope, applied to every data point under them.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Overwrite whatever the data point has (`job`, `instance`, `otel_scope_*`). Sorted.
    pub overwrite: Vec<Label>,
    /// Only added when the data point does not have the name (promoted resource attributes,
    /// external labels). Sorted, unique.
    pub fill: Vec<Label>,
}

/// `job` and `instance` from the resource's service attributes. An empty `service.name`
/// counts as absent (no `job`); an empty namespace is left out of `job`.
pub fn job_instance(resource: &[KeyValue]) -> Vec<Label> {
    let mut out = Vec::with_capacity(2);
    let name = find_attr(resource, SERVICE_NAME).map(|kv| value_string(kv.value.as_ref()));
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let ns = find_attr(resource, SERVICE_NAMESPACE)
            .map(|kv| value_string(kv.value.as_ref()))
            .unwrap_or_default();
        let job = if ns.is_empty() {
            name
        } else {
            format!("{ns}/{name}")
        };
        out.push(Label {
            name: JOB.into(),
            value: job,
        });
    }
    if let Some(id) = find_attr(resource, SERVICE_INSTANCE_ID)
        .map(|kv| value_string(kv.value.as_ref()))
        .filter(|v| !v.is_empty())
    {
        out.push(Label {
            name: INSTANCE.into(),
            value: id,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Merges a context into data-point labels and returns the sorted label set (without
/// `__name__`).
pub fn apply_context(mut labels: Vec<Label>, ctx: &Context) -> Vec<Label> {
    let base_len = labels.len();
    for o in &ctx.overwrite {
        match labels[..base_len].binary_search_by(|l| l.name.as_str().cmp(&o.name)) {
            Ok(i) => labels[i].value.clone_from(&o.value),
            Err(_) => labels.push(o.clone()),
        }
    }
    let with_overwrite = labels.len();
    for f in &ctx.fill {
        let present = labels[..base_len]
            .binary_search_by(|l| l.name.as_str().cmp(&f.name))
            .is_ok()
            || labels[base_len..with_overwrite]
                .iter()
                .any(|l| l.name == f.name);
        if !present {
            labels.push(f.clone());
        }
    }
    if labels.len() != base_len {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }
    labels
}

/// Inserts `name=value` keeping the set sorted (replacing an existing value).
pub fn insert_sorted(labels: &mut Vec<Label>, name: &str, value: String) {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) => labels[i].value = value,
        Err(i) => labels.insert(
            i,
            Label {
                name: name.to_string(),
                value,
            },
        ),
    }
}
