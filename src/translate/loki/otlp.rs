//! The `otlp` format: Loki's native OTLP ingestion mapping (docs/loki.md "format: otlp", Loki
//! `pkg/loghttp/push/otlp.go`).
//!
//! - Stream labels: the configured resource attributes (`index_labels`), names normalized
//!   (`service.name` -> `service_name`), maps flattened; `service_name` discovered from the
//!   other labels (Loki's discovery list, in list order) or `unknown_service`. Log-record
//!   attributes never become labels.
//! - Structured metadata per entry: record fields (`observed_timestamp`, `severity_number`,
//!   `severity_text`, `dropped_attributes_count`, `flags`, `trace_id`, `span_id`,
//!   `event_name`), log attributes, the resource attributes not indexed, scope attributes,
//!   `scope_name`, `scope_version`, `scope_dropped_attributes_count`.
//! - Line: the body as text (`AsString`: maps and arrays as JSON, bytes as base64).
//!
//! Name collisions (deterministic, our rule; Loki itself would keep duplicate pairs): within an
//! entry, names are claimed in the order above, record fields first, so a log attribute called
//! `trace_id` can never shadow the real trace id. A metadata pair whose name is already taken
//! (by a stream label or an earlier pair) is renamed `<name>_extracted`, the suffix LogQL
//! itself gives a parsed or metadata label that collides with a stream label; if that is taken
//! too, the pair is dropped. Among index labels normalizing to the same name, the attribute
//! listed earlier in `index_labels` wins.

use super::encode::{Entry, Stream};
use super::labels::{self, LabelSet};
use super::{Grouper, Options, id_hex, record_time};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::borrow::Cow;

pub(super) type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// What one `ResourceLogs` contributes to all of its entries, computed once per resource.
pub struct PreparedResource<'r> {
    selector: String,
    label_names: Vec<String>,
    metadata: Vec<Pair<'r>>,
    /// Per scope: its shared metadata pairs.
    scopes: Vec<Vec<Pair<'r>>>,
}

/// Stream labels of one resource (exposed for tests and docs).
pub fn resource_labels(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    opts: &Options,
) -> LabelSet {
    let mut set = LabelSet::new();
    let mut pairs = Vec::new();
    for wanted in &opts.index_labels {
        for kv in attrs.iter().filter(|kv| &kv.key == wanted) {
            pairs.clear();
            labels::flatten_attribute(kv, &mut pairs);
            for (n, v) in &pairs {
                set.insert_if_absent(n, v);
            }
        }
    }
    if !set.contains(labels::SERVICE_NAME) {
        let discovered = labels::SERVICE_NAME_DISCOVERY
            .iter()
            .find_map(|name| set.get(name))
            .unwrap_or(labels::UNKNOWN_SERVICE)
            .to_string();
        set.insert_if_absent(labels::SERVICE_NAME, &discovered);
    }
    set
}

/// Metadata pairs of the resource attributes that are not index labels.
pub(super) fn resource_metadata<'r>(
    attrs: &'r [opentelemetry_proto::tonic::common::v1::KeyValue],
    opts: &Options,
) -> Vec<Pair<'r>> {
    let mut metadata = Vec::new();
    for kv in attrs {
        if !opts.index_labels.iter().any(|i| i == &kv.key) {
            labels::flatten_attribute(kv, &mut metadata);
        }
    }
    metadata
}

/// Metadata pairs shared by every record of a scope.
pub(super) fn scope_metadata(
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
) -> Vec<Pair<'_>> {
    let mut pairs = Vec::new();
    if let Some(scope) = scope {
        for kv in &scope.attributes {
            labels::flatten_attribute(kv, &mut pairs);
        }
        if !scope.name.is_empty() {
            pairs.push((
                Cow::Borrowed("scope_name"),
                Cow::Borrowed(scope.name.as_str()),
            ));
        }
        if !scope.version.is_empty() {
            pairs.push((
                Cow::Borrowed("scope_version"),
                Cow::Borrowed(scope.version.as_str()),
            ));
        }
        if scope.dropped_attributes_count != 0 {
            pairs.push((
                Cow::Borrowed("scope_dropped_attributes_count"),
                Cow::Owned(scope.dropped_attributes_count.to_string()),
            ));
        }
    }
    pairs
}

/// Pass 1: labels and shared metadata per resource and scope.
pub fn prepare<'r>(req: &'r ExportLogsServiceRequest, opts: &Options) -> Vec<PreparedResource<'r>> {
    req.resource_logs
        .iter()
        .map(|rl| {
            let attrs: &[_] = rl
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let set = resource_labels(attrs, opts);
            PreparedResource {
                selector: set.to_selector(),
                label_names: set.iter().map(|(n, _)| n.to_string()).collect(),
                metadata: resource_metadata(attrs, opts),
                scopes: rl
                    .scope_logs
                    .iter()
                    .map(|sl| scope_metadata(sl.scope.as_ref()))
                    .collect(),
            }
        })
        .collect()
}

/// Pass 2: one entry per log record, grouped per stream.
pub fn build<'p>(
    req: &'p ExportLogsServiceRequest,
    prepared: &'p [PreparedResource<'_>],
    now_nanos: i64,
) -> Vec<Stream<'p>> {
    let mut g = Grouper::default();
    for (rl, prep) in req.resource_logs.iter().zip(prepared) {
        let n: usize = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
        if n == 0 {
            continue;
        }
        let stream = g.stream(prep.selector.clone());
        g.streams[stream].entries.reserve(n);
        for (sl, scope_md) in rl.scope_logs.iter().zip(&prep.scopes) {
            for lr in &sl.log_records {
                g.push(
                    stream,
                    record_entry(lr, &prep.label_names, &prep.metadata, scope_md, now_nanos),
                );
            }
        }
    }
    g.streams
}

/// One record's entry: record fields, log attributes, then the resource and scope pairs.
pub(super) fn record_entry<'p>(
    lr: &'p LogRecord,
    label_names: &[String],
    resource_md: &'p [Pair<'_>],
    scope_md: &'p [Pair<'_>],
    now_nanos: i64,
) -> Entry<'p> {
    let cap = 8 + lr.attributes.len() + resource_md.len() + scope_md.len();
    let mut md = Metadata {
        labels: label_names,
        pairs: Vec::with_capacity(cap),
    };
    record_fields(lr, &mut md);
    let mut attrs = Vec::with_capacity(lr.attributes.len());
    for kv in &lr.attributes {
        labels::flatten_attribute(kv, &mut attrs);
    }
    for (n, v) in attrs {
        md.add(n, v);
    }
    for (n, v) in resource_md.iter().chain(scope_md) {
        md.add(Cow::Borrowed(n.as_ref()), Cow::Borrowed(v.as_ref()));
    }
    Entry {
        ts: record_time(lr, now_nanos),
        line: super::value::as_string(lr.body.as_ref()),
        metadata: md.pairs,
    }
}

/// The fields of the record itself, as Loki names them.
fn record_fields<'p>(lr: &'p LogRecord, md: &mut Metadata<'_, 'p>) {
    if lr.time_unix_nano != 0 && lr.observed_time_unix_nano != 0 {
        md.add(
            Cow::Borrowed("observed_timestamp"),
            Cow::Owned(lr.observed_time_unix_nano.to_string()),
        );
    }
    if lr.severity_number != 0 {
        md.add(
            Cow::Borrowed("severity_number"),
            Cow::Owned(lr.severity_number.to_string()),
        );
    }
    if !lr.severity_text.is_empty() {
        md.add(
            Cow::Borrowed("severity_text"),
            Cow::Borrowed(lr.severity_text.as_str()),
        );
    }
    if lr.dropped_attributes_count != 0 {
        md.add(
            Cow::Borrowed("dropped_attributes_count"),
            Cow::Owned(lr.dropped_attributes_count.to_string()),
        );
    }
    if lr.flags != 0 {
        md.add(Cow::Borrowed("flags"), Cow::Owned(lr.flags.to_string()));
    }
    if let Some(t) = id_hex(&lr.trace_id, 16) {
        md.add(Cow::Borrowed("trace_id"), Cow::Owned(t));
    }
    if let Some(s) = id_hex(&lr.span_id, 8) {
        md.add(Cow::Borrowed("span_id"), Cow::Owned(s));
    }
    if !lr.event_name.is_empty() {
        md.add(
            Cow::Borrowed("event_name"),
            Cow::Borrowed(lr.event_name.as_str()),
        );
    }
}

/// An entry's metadata under construction, enforcing unique names (see module docs).
pub(super) struct Metadata<'l, 'p> {
    pub labels: &'l [String],
    pub pairs: Vec<Pair<'p>>,
}

impl<'p> Metadata<'_, 'p> {
    fn taken(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l == name) || self.pairs.iter().any(|(n, _)| n == name)
    }

    pub fn add(&mut self, name: Cow<'p, str>, value: Cow<'p, str>) {
        if name.is_empty() {
            return;
        }
        if !self.taken(&name) {
            self.pairs.push((name, value));
            return;
        }
        let alt = format!("{name}_extracted");
        if !self.taken(&alt) {
            self.pairs.push((Cow::Owned(alt), value));
        }
    }
}
