//! Label sets: OTLP attributes -> sanitized, collision-joined, sorted Prometheus labels, and
//! the per-resource/per-scope labels (`job`, `instance`, promoted resource attributes,
//! external labels, `otel_scope_*`) merged in the precedence order of Prometheus' translator.
//!
//! Hot path: label names are shared (`Rc<str>`, sanitized once per distinct key through
//! [`NameCache`]) and string values are borrowed from the request bytes, so building a
//! point's label set allocates only its vector.

use super::hash::FxBuild;
use super::naming::label_name;
use super::points::{Attr, AttrValue};
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

pub const JOB: &str = "job";
pub const INSTANCE: &str = "instance";
pub const NAME: &str = "__name__";
pub const SCOPE_NAME: &str = "otel_scope_name";
pub const SCOPE_VERSION: &str = "otel_scope_version";
pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_NAMESPACE: &str = "service.namespace";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// A label whose name is shared and whose value may borrow from the request or a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lbl<'a> {
    pub name: Rc<str>,
    pub value: Cow<'a, str>,
}

impl<'a> Lbl<'a> {
    pub fn owned(name: &str, value: impl Into<String>) -> Lbl<'static> {
        Lbl {
            name: Rc::from(name),
            value: Cow::Owned(value.into()),
        }
    }

    /// The same label borrowing this one's value.
    pub fn borrow(&self) -> Lbl<'_> {
        Lbl {
            name: self.name.clone(),
            value: Cow::Borrowed(&self.value),
        }
    }
}

/// Sanitized label names by attribute key (`None` = unusable key), for one translation.
#[derive(Default)]
pub struct NameCache {
    map: HashMap<String, Option<Rc<str>>, FxBuild>,
}

impl NameCache {
    pub fn get(&mut self, key: &str) -> Option<Rc<str>> {
        if let Some(n) = self.map.get(key) {
            return n.clone();
        }
        let n = label_name(key)
            .ok()
            .filter(|n| n != NAME)
            .map(|n| Rc::from(n.as_str()));
        self.map.insert(key.to_string(), n.clone());
        n
    }
}

/// An attribute value as a label value: strings as is (borrowed), numbers and bools in their
/// usual text form, bytes base64, arrays and maps as JSON.
pub fn value_cow<'a>(v: &AttrValue<'a>) -> Cow<'a, str> {
    match *v {
        AttrValue::Str(s) => Cow::Borrowed(s),
        AttrValue::Bool(b) => Cow::Owned(b.to_string()),
        AttrValue::Int(i) => Cow::Owned(i.to_string()),
        AttrValue::Double(d) => Cow::Owned(super::naming::format_float(d)),
        AttrValue::Bytes(b) => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b)),
        AttrValue::Complex(raw) => match AnyValue::decode(raw) {
            Ok(any) => Cow::Owned(to_json(any.value.as_ref()).to_string()),
            Err(_) => Cow::Borrowed(""),
        },
        AttrValue::Empty => Cow::Borrowed(""),
    }
}

/// An attribute value as an owned string.
pub fn value_string(v: &AttrValue<'_>) -> String {
    value_cow(v).into_owned()
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

/// Finds an attribute by key.
pub fn find_attr<'s, 'a>(attrs: &'s [Attr<'a>], key: &str) -> Option<&'s Attr<'a>> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Sanitizes attribute keys, drops empty values, unusable names, `__name__` and `skip` keys,
/// and joins the values of keys that collapse to the same label with `;` in the order of the
/// original keys. The result is sorted by name with unique names.
pub fn attributes_to_labels<'a>(
    attrs: &[Attr<'a>],
    skip: &[&str],
    cache: &mut NameCache,
) -> Vec<Lbl<'a>> {
    let mut tmp: Vec<(Rc<str>, &'a str, Cow<'a, str>)> = Vec::with_capacity(attrs.len());
    for kv in attrs {
        if skip.contains(&kv.key) {
            continue;
        }
        let value = value_cow(&kv.value);
        if value.is_empty() {
            continue;
        }
        let Some(name) = cache.get(kv.key) else {
            continue;
        };
        tmp.push((name, kv.key, value));
    }
    if !tmp.windows(2).all(|w| w[0].0 < w[1].0) {
        tmp.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    }
    let mut out: Vec<Lbl<'a>> = Vec::with_capacity(tmp.len() + 6);
    for (name, _, value) in tmp {
        match out.last_mut() {
            Some(last) if last.name == name => {
                let joined = last.value.to_mut();
                joined.push(';');
                joined.push_str(&value);
            }
            _ => out.push(Lbl { name, value }),
        }
    }
    out
}

/// Labels contributed by a resource and a scope, applied to every data point under them.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Overwrite whatever the data point has (`job`, `instance`, `otel_scope_*`). Sorted.
    pub overwrite: Vec<Lbl<'static>>,
    /// Only added when the data point does not have the name (promoted resource attributes,
    /// external labels). Sorted, unique.
    pub fill: Vec<Lbl<'static>>,
}

/// `job` and `instance` from the resource's service attributes. An empty `service.name`
/// counts as absent (no `job`); an empty namespace is left out of `job`.
pub fn job_instance(resource: &[Attr<'_>]) -> Vec<Lbl<'static>> {
    let mut out = Vec::with_capacity(2);
    let name = find_attr(resource, SERVICE_NAME).map(|kv| value_string(&kv.value));
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let ns = find_attr(resource, SERVICE_NAMESPACE)
            .map(|kv| value_string(&kv.value))
            .unwrap_or_default();
        let job = if ns.is_empty() {
            name
        } else {
            format!("{ns}/{name}")
        };
        out.push(Lbl::owned(JOB, job));
    }
    if let Some(id) = find_attr(resource, SERVICE_INSTANCE_ID)
        .map(|kv| value_string(&kv.value))
        .filter(|v| !v.is_empty())
    {
        out.push(Lbl::owned(INSTANCE, id));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Merges a context into data-point labels and returns the sorted label set (without
/// `__name__`).
pub fn apply_context<'a>(mut labels: Vec<Lbl<'a>>, ctx: &'a Context) -> Vec<Lbl<'a>> {
    let base_len = labels.len();
    for o in &ctx.overwrite {
        match labels[..base_len].binary_search_by(|l| l.name.cmp(&o.name)) {
            Ok(i) => labels[i].value = Cow::Borrowed(&o.value),
            Err(_) => labels.push(o.borrow()),
        }
    }
    let with_overwrite = labels.len();
    for f in &ctx.fill {
        let present = labels[..base_len]
            .binary_search_by(|l| l.name.cmp(&f.name))
            .is_ok()
            || labels[base_len..with_overwrite]
                .iter()
                .any(|l| l.name == f.name);
        if !present {
            labels.push(f.borrow());
        }
    }
    if labels.len() != base_len {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }
    labels
}
