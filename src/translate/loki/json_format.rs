//! The `json` format: what the contrib `lokiexporter` and Alloy's `otelcol.exporter.loki`
//! produce (docs/loki.md "format: json", contrib `pkg/translator/loki`), for users migrating from them without
//! rewriting their LogQL.
//!
//! - Labels: `exporter="OTLP"`, `job` (`service.namespace/service.name` or `service.name`),
//!   `instance` (`service.instance.id`), `level` (severity text, lower-cased), each switchable
//!   with `default_labels_enabled`; plus the attributes named by the hints
//!   `loki.resource.labels` (resource attributes; the hint may sit on the resource or on the
//!   record) and `loki.attribute.labels` (record attributes). A hint is a comma-separated
//!   string or an array; a dotted name that is not a key is looked up as a nested path. Later
//!   sources override earlier ones for the same label name (`LabelSet.Merge`). Label names are
//!   normalized like the `otlp` format so Loki accepts them.
//! - Line: `{"body":...,"traceid":"..","spanid":"..","severity":"..","flags":n,
//!   "attributes":{..},"resources":{..},"instrumentation_scope":{"name":..,"version":..}}`, empty
//!   fields left out, maps with sorted keys. Hint attributes (`loki.*`) and promoted attributes
//!   are removed from `attributes` / `resources`.
//! - No structured metadata. The `loki.tenant` and `loki.format` hints are removed and
//!   otherwise ignored (the tenant is the exporter's static `X-Scope-OrgID`; the line is always
//!   JSON).

use super::encode::{Entry, Stream};
use super::labels::{self, LabelSet};
use super::value::{self, write_json_str};
use super::{Grouper, Options, id_hex, record_time};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::borrow::Cow;
use std::fmt::Write as _;

pub(super) const HINT_ATTRIBUTES: &str = "loki.attribute.labels";
pub(super) const HINT_RESOURCES: &str = "loki.resource.labels";
const HINT_TENANT: &str = "loki.tenant";
const HINT_FORMAT: &str = "loki.format";

pub(super) fn is_hint(key: &str) -> bool {
    matches!(
        key,
        HINT_ATTRIBUTES | HINT_RESOURCES | HINT_TENANT | HINT_FORMAT
    )
}

fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn get_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match get(attrs, key)?.value.as_ref()? {
        Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Attribute names listed by a hint value.
fn hint_names(v: &AnyValue) -> Vec<String> {
    match &v.value {
        Some(Value::StringValue(s)) => s.split(',').map(|n| n.trim().to_string()).collect(),
        Some(Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|x| value::as_string(Some(x)).trim().to_string())
            .collect(),
        _ => vec![value::as_string(Some(v)).trim().to_string()],
    }
}

/// Looks `name` up as a key, else as a dotted path through nested maps.
fn lookup<'a>(attrs: &'a [KeyValue], name: &str) -> Option<&'a AnyValue> {
    if let Some(v) = get(attrs, name) {
        return Some(v);
    }
    let (left, right) = name.split_once('.')?;
    match &get(attrs, left)?.value {
        Some(Value::KvlistValue(m)) => lookup(&m.values, right),
        _ => None,
    }
}

/// Promotes the attributes a hint names; returns the promoted keys.
fn promote(attrs: &[KeyValue], hint: &AnyValue, set: &mut LabelSet, promoted: &mut Vec<String>) {
    for name in hint_names(hint) {
        if name.is_empty() {
            continue;
        }
        if let Some(v) = lookup(attrs, &name) {
            set.insert_or_replace(&labels::normalize(&name), &value::as_string(Some(v)));
            promoted.push(name);
        }
    }
}

/// Labels every record of a resource gets, and the resource attributes they promote.
pub(super) fn resource_base(res: &[KeyValue], opts: &Options) -> (LabelSet, Vec<String>) {
    let dl = opts.default_labels;
    let mut base = LabelSet::new();
    if dl.exporter {
        base.insert_or_replace("exporter", "OTLP");
    }
    if dl.job {
        if let Some(name) = get_str(res, "service.name") {
            match get_str(res, "service.namespace") {
                Some(ns) => base.insert_or_replace("job", &format!("{ns}/{name}")),
                None => base.insert_or_replace("job", name),
            }
        }
    }
    if dl.instance {
        if let Some(id) = get_str(res, "service.instance.id") {
            base.insert_or_replace("instance", id);
        }
    }
    let mut res_promoted = Vec::new();
    if let Some(h) = get(res, HINT_RESOURCES) {
        promote(res, h, &mut base, &mut res_promoted);
    }
    (base, res_promoted)
}

/// One record's stream selector and entry.
pub(super) fn record_entry(
    lr: &LogRecord,
    res: &[KeyValue],
    base: &LabelSet,
    res_promoted: &[String],
    scope: Option<&InstrumentationScope>,
    opts: &Options,
    now_nanos: i64,
) -> (String, Entry<'static>) {
    let mut set = base.clone();
    let mut res_p = res_promoted.to_vec();
    let mut attr_p = Vec::new();
    if opts.default_labels.level && !lr.severity_text.is_empty() {
        set.insert_or_replace("level", &lr.severity_text.to_lowercase());
    }
    if let Some(h) = get(&lr.attributes, HINT_RESOURCES) {
        promote(res, h, &mut set, &mut res_p);
    }
    if let Some(h) = get(&lr.attributes, HINT_ATTRIBUTES) {
        promote(&lr.attributes, h, &mut set, &mut attr_p);
    }
    if set.is_empty() {
        // Loki refuses a stream without labels.
        set.insert_or_replace("exporter", "OTLP");
    }
    let line = json_line(lr, res, &res_p, &attr_p, scope);
    (
        set.to_selector(),
        Entry {
            ts: record_time(lr, now_nanos),
            line: Cow::Owned(line),
            metadata: Vec::new(),
        },
    )
}

pub fn build<'a>(
    req: &'a ExportLogsServiceRequest,
    opts: &Options,
    now_nanos: i64,
) -> Vec<Stream<'a>> {
    let mut g = Grouper::default();
    for rl in &req.resource_logs {
        let res: &[KeyValue] = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let (base, res_promoted) = resource_base(res, opts);
        for sl in &rl.scope_logs {
            for lr in &sl.log_records {
                let (selector, entry) = record_entry(
                    lr,
                    res,
                    &base,
                    &res_promoted,
                    sl.scope.as_ref(),
                    opts,
                    now_nanos,
                );
                let stream = g.stream(selector);
                g.push(stream, entry);
            }
        }
    }
    g.streams
}

pub(super) fn write_filtered_map(
    out: &mut String,
    key: &str,
    attrs: &[KeyValue],
    promoted: &[String],
) {
    let mut kept = attrs
        .iter()
        .filter(|kv| !is_hint(&kv.key) && !promoted.iter().any(|p| p == &kv.key))
        .peekable();
    if kept.peek().is_none() {
        return;
    }
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    value::write_json_map(out, kept);
}

/// The lokiexporter JSON line. Fields follow its struct order.
fn json_line(
    lr: &LogRecord,
    res: &[KeyValue],
    res_promoted: &[String],
    attr_promoted: &[String],
    scope: Option<&InstrumentationScope>,
) -> String {
    let mut out = String::with_capacity(128);
    out.push('{');
    // `body` first; a leading comma is stripped at the end when it is absent.
    if lr.body.as_ref().is_some_and(|b| b.value.is_some()) {
        out.push_str(",\"body\":");
        value::write_json_value(&mut out, lr.body.as_ref());
    }
    if let Some(t) = id_hex(&lr.trace_id, 16) {
        let _ = write!(out, ",\"traceid\":\"{t}\"");
    }
    if let Some(s) = id_hex(&lr.span_id, 8) {
        let _ = write!(out, ",\"spanid\":\"{s}\"");
    }
    if !lr.severity_text.is_empty() {
        out.push_str(",\"severity\":");
        write_json_str(&mut out, &lr.severity_text);
    }
    if lr.flags != 0 {
        let _ = write!(out, ",\"flags\":{}", lr.flags);
    }
    write_filtered_map(&mut out, "attributes", &lr.attributes, attr_promoted);
    write_filtered_map(&mut out, "resources", res, res_promoted);
    if let Some(sc) = scope.filter(|s| !s.name.is_empty()) {
        out.push_str(",\"instrumentation_scope\":{\"name\":");
        write_json_str(&mut out, &sc.name);
        if !sc.version.is_empty() {
            out.push_str(",\"version\":");
            write_json_str(&mut out, &sc.version);
        }
        out.push('}');
    }
    out.push('}');
    if out.as_bytes().get(1) == Some(&b',') {
        out.remove(1);
    }
    out
}
