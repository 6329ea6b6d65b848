//! The per-run summary: what a CD gate or an analysis tool needs to judge a test run without
//! querying Tempo or Loki: per service span, error span and log counts, latency quantiles
//! per span name (from a mergeable [`Sketch`]), exceptions and error logs grouped by
//! fingerprint with first/last seen and example trace ids. Memory is bounded: services,
//! operations and groups have caps, and what does not fit is counted in `other`.
//! The serialized form is the documented JSON schema (`watchtower.run_summary/v1`); field
//! names are stable.

use crate::runs::fingerprint::{TOP_FRAMES, fingerprint, mask, top_frames};
use crate::runs::sketch::Sketch;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, status::StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const SCHEMA: &str = "watchtower.run_summary/v1";
pub const RUN_ID_KEY: &str = "test.run.id";
/// Services per run beyond which data counts under `other.services`.
pub const MAX_SERVICES: usize = 256;
/// Example trace ids kept per group.
const EXAMPLES: usize = 3;

/// Caps for one summary.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// exception groups, and separately error-log groups
    pub max_groups: usize,
    /// (span name) operations per service
    pub max_operations: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Open,
    Ended,
    Expired,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunSource {
    /// started with `POST /runs`
    #[default]
    Api,
    /// first seen as a `test.run.id` resource attribute set by the service itself
    Attribute,
}

/// The API's words (`open`, `ended`, `expired`), as the JSON says them.
impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Open => "open",
            RunState::Ended => "ended",
            RunState::Expired => "expired",
        })
    }
}

/// The API's words (`api`, `attribute`), as the JSON says them.
impl std::fmt::Display for RunSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunSource::Api => "api",
            RunSource::Attribute => "attribute",
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub spans: u64,
    pub error_spans: u64,
    pub error_rate: f64,
    pub log_records: u64,
    pub error_log_records: u64,
    pub metric_points: u64,
    pub exceptions: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Operation {
    pub count: u64,
    pub error_count: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// the mergeable latency sketch (ms) behind the quantiles
    pub sketch: Sketch,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceSummary {
    pub spans: u64,
    pub error_spans: u64,
    pub error_rate: f64,
    pub exceptions: u64,
    pub log_records: u64,
    pub error_log_records: u64,
    pub log_records_by_severity: BTreeMap<String, u64>,
    pub metric_points: u64,
    /// per span name
    pub operations: BTreeMap<String, Operation>,
}

/// One exception group (or error-log group).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub service: String,
    /// `exception.type` (for error logs: the record's `exception.type` attribute, or "")
    #[serde(rename = "type")]
    pub ty: String,
    pub fingerprint: String,
    /// the first message seen, with numbers/ids/hex masked
    pub message: String,
    /// innermost stack frames, normalized
    pub frames: Vec<String>,
    pub count: u64,
    pub first_seen_unix_nano: u64,
    pub last_seen_unix_nano: u64,
    pub example_trace_ids: Vec<String>,
}

/// What did not fit the caps.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Other {
    pub exceptions: u64,
    pub error_log_records: u64,
    pub operation_spans: u64,
    pub service_items: u64,
}

/// Items the `runsummary` exporter dropped while this run was open (its queue was full):
/// the summary undercounts by at most this much. Counted for the exporter as a whole, so
/// with overlapping runs it is an upper bound per run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Dropped {
    pub spans: u64,
    pub log_records: u64,
    pub metric_points: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.spans + self.log_records + self.metric_points
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub schema: String,
    pub id: String,
    pub state: RunState,
    pub source: RunSource,
    pub labels: BTreeMap<String, String>,
    /// resource attributes a resource must carry to be stamped (empty = everything)
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub expires_unix_ms: u64,
    pub totals: Totals,
    pub services: BTreeMap<String, ServiceSummary>,
    pub exception_groups: Vec<Group>,
    pub error_log_groups: Vec<Group>,
    pub other: Other,
    pub dropped: Dropped,
    /// false when `dropped` is non-zero
    pub complete: bool,
    /// true when the answer lacks replicas of the tier that did not answer (their part of
    /// the counts is missing); they are listed in `missing_replicas`
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub missing_replicas: Vec<String>,
    /// When replicas took up this run after it had started (ms since the Unix epoch, one
    /// entry per replica part): a replica that starts while a run is open learns it from its
    /// peers, or reloads its part from `extensions.runs.directory` after a crash, and
    /// summarizes from then on. After a scale-up nothing is missing; after a restart, what that replica received
    /// before it (with a directory: since its last save) is. Absent when every part was
    /// there from the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_joins: Vec<u64>,
    /// Which `run-start` of a tier created this run (`<start ms>-<replica id>`, set by the
    /// replica that received it; absent on one replica and for runs opened by data). Two
    /// run-starts racing with one id on two replicas are told apart by it: the smaller one
    /// is kept everywhere and only its caller is answered `201`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The replicas known to hold a part of this run, by replica id (kept across restarts with
    /// a `directory`), recorded on every replica by the tier: those that took it at
    /// `run-start`, each that took it up later from its peers (a replica that started while it
    /// was open), and those whose parts a tier `run-end` merged. One among them whose part is
    /// neither among the merged ones nor handed to a peer ([`Summary::absorbed`]) makes every
    /// answer `partial`, naming it: it was killed or removed without handing its part over,
    /// or restarted without a `directory` (a new process is a new replica, whose new part is
    /// listed in `late_joins`; the old part stays named, at any address). A clean stop
    /// without a `directory` hands the part over. Empty for runs opened by `test.run.id` data
    /// until a `run-end`, and for runs of a single replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
    /// The replicas whose parts this part includes, by replica id: a replica without a
    /// `directory` hands its parts to a peer when it stops (a scale-down, a rolling update),
    /// and the peer adds them to its own. A holder among them is not missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absorbed: Vec<String>,
    #[serde(skip)]
    index: HashMap<(bool, String, String, String), usize>,
}

/// One replica known to hold a part of a run ([`Summary::holders`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Holder {
    /// the replica's id (its `x-watchtower-replica` header; 16 hex digits)
    pub replica: String,
    /// where the replica that recorded it reached it (`host:port`; empty when unknown): how
    /// a missing holder is named
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
}

/// Most holders one run records ([`Summary::holders`]); later ones are not recorded.
pub const MAX_HOLDERS: usize = 1024;

impl Holder {
    /// Adds `more` to `list`, a set by replica id kept sorted: a replica recorded without an
    /// address takes the first one given later; at most [`MAX_HOLDERS`]. Returns whether
    /// `list` changed.
    pub fn union(list: &mut Vec<Holder>, more: &[Holder]) -> bool {
        let mut changed = false;
        for h in more {
            match list.binary_search_by(|x| x.replica.cmp(&h.replica)) {
                Ok(i) => {
                    if list[i].address.is_empty() && !h.address.is_empty() {
                        list[i].address = h.address.clone();
                        changed = true;
                    }
                }
                Err(i) if list.len() < MAX_HOLDERS => {
                    list.insert(i, h.clone());
                    changed = true;
                }
                Err(_) => {}
            }
        }
        changed
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn str_value(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| str_value(&kv.value))
}

/// `test.run.id` of a resource, if any.
pub fn run_id(r: &Option<Resource>) -> Option<String> {
    r.as_ref().and_then(|r| attr(&r.attributes, RUN_ID_KEY))
}

fn service_name(r: &Option<Resource>) -> String {
    r.as_ref()
        .and_then(|r| attr(&r.attributes, "service.name"))
        .unwrap_or_else(|| "unknown_service".into())
}

/// Severity name from the number (OTLP ranges), or the text when the number is unset.
pub fn severity_name(number: i32, text: &str) -> String {
    match number {
        1..=4 => "TRACE".into(),
        5..=8 => "DEBUG".into(),
        9..=12 => "INFO".into(),
        13..=16 => "WARN".into(),
        17..=20 => "ERROR".into(),
        21..=24 => "FATAL".into(),
        _ if text.is_empty() => "UNSPECIFIED".into(),
        _ => text.to_ascii_uppercase(),
    }
}

fn is_error_severity(number: i32, text: &str) -> bool {
    if number > 0 {
        return number >= 17;
    }
    let t = text.to_ascii_uppercase();
    t.starts_with("ERR") || t.starts_with("FATAL") || t.starts_with("CRIT")
}

fn body_string(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) => str_value(v).unwrap_or_default(),
        None => String::new(),
    }
}

struct Occurrence<'a> {
    service: &'a str,
    ty: String,
    message: &'a str,
    stack: &'a str,
    time: u64,
    trace_id: &'a [u8],
}

impl Summary {
    pub fn new(id: &str, source: RunSource, expires_unix_ms: u64) -> Self {
        Summary {
            schema: SCHEMA.into(),
            id: id.into(),
            source,
            started_unix_ms: now_ms(),
            expires_unix_ms,
            complete: true,
            ..Default::default()
        }
    }

    /// Rebuilds the group index after loading from JSON.
    pub fn reindex(&mut self) {
        self.index.clear();
        for (log, groups) in [
            (false, &self.exception_groups),
            (true, &self.error_log_groups),
        ] {
            for (i, g) in groups.iter().enumerate() {
                self.index.insert(
                    (log, g.service.clone(), g.ty.clone(), g.fingerprint.clone()),
                    i,
                );
            }
        }
    }

    fn service(&mut self, name: String) -> Option<&mut ServiceSummary> {
        if !self.services.contains_key(&name) && self.services.len() >= MAX_SERVICES {
            return None;
        }
        Some(self.services.entry(name).or_default())
    }

    fn group(&mut self, log: bool, o: Occurrence, lim: &Limits) {
        let masked = mask(o.message);
        let frames = top_frames(o.stack, TOP_FRAMES);
        let fp = fingerprint(&o.ty, &masked, &frames);
        let key = (log, o.service.to_string(), o.ty.clone(), fp.clone());
        let groups = if log {
            &mut self.error_log_groups
        } else {
            &mut self.exception_groups
        };
        let idx = match self.index.get(&key) {
            Some(i) => *i,
            None if groups.len() >= lim.max_groups => {
                if log {
                    self.other.error_log_records += 1;
                } else {
                    self.other.exceptions += 1;
                }
                return;
            }
            None => {
                groups.push(Group {
                    service: o.service.into(),
                    ty: o.ty,
                    fingerprint: fp,
                    message: masked,
                    frames,
                    first_seen_unix_nano: o.time,
                    last_seen_unix_nano: o.time,
                    ..Default::default()
                });
                self.index.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        let Some(g) = groups.get_mut(idx) else { return };
        g.count += 1;
        if o.time > 0 {
            if g.first_seen_unix_nano == 0 || o.time < g.first_seen_unix_nano {
                g.first_seen_unix_nano = o.time;
            }
            g.last_seen_unix_nano = g.last_seen_unix_nano.max(o.time);
        }
        if g.example_trace_ids.len() < EXAMPLES && !o.trace_id.is_empty() {
            let t = hex::encode(o.trace_id);
            if !g.example_trace_ids.contains(&t) {
                g.example_trace_ids.push(t);
            }
        }
    }

    pub fn add_spans(&mut self, rs: &ResourceSpans, lim: &Limits) {
        let svc = service_name(&rs.resource);
        for span in rs.scope_spans.iter().flat_map(|s| s.spans.iter()) {
            let error = span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32);
            let ms = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano) as f64
                / 1e6;
            let Some(s) = self.service(svc.clone()) else {
                self.other.service_items += 1;
                continue;
            };
            s.spans += 1;
            if error {
                s.error_spans += 1;
            }
            if !s.operations.contains_key(&span.name) && s.operations.len() >= lim.max_operations {
                self.other.operation_spans += 1;
            } else {
                let op = s.operations.entry(span.name.clone()).or_default();
                op.count += 1;
                if error {
                    op.error_count += 1;
                }
                op.sketch.add(ms);
            }
            self.totals.spans += 1;
            if error {
                self.totals.error_spans += 1;
            }
            for ev in span.events.iter().filter(|e| e.name == "exception") {
                let ty = attr(&ev.attributes, "exception.type").unwrap_or_default();
                let msg = attr(&ev.attributes, "exception.message").unwrap_or_default();
                let stack = attr(&ev.attributes, "exception.stacktrace").unwrap_or_default();
                if let Some(s) = self.services.get_mut(&svc) {
                    s.exceptions += 1;
                }
                self.totals.exceptions += 1;
                let time = if ev.time_unix_nano > 0 {
                    ev.time_unix_nano
                } else {
                    span.end_time_unix_nano
                };
                self.group(
                    false,
                    Occurrence {
                        service: &svc,
                        ty,
                        message: &msg,
                        stack: &stack,
                        time,
                        trace_id: &span.trace_id,
                    },
                    lim,
                );
            }
        }
    }

    pub fn add_logs(&mut self, rl: &ResourceLogs, lim: &Limits) {
        let svc = service_name(&rl.resource);
        for r in rl.scope_logs.iter().flat_map(|s| s.log_records.iter()) {
            let sev = severity_name(r.severity_number, &r.severity_text);
            let error = is_error_severity(r.severity_number, &r.severity_text);
            let Some(s) = self.service(svc.clone()) else {
                self.other.service_items += 1;
                continue;
            };
            s.log_records += 1;
            *s.log_records_by_severity.entry(sev).or_insert(0) += 1;
            if error {
                s.error_log_records += 1;
            }
            self.totals.log_records += 1;
            if error {
                self.totals.error_log_records += 1;
                let ty = attr(&r.attributes, "exception.type").unwrap_or_default();
                let stack = attr(&r.attributes, "exception.stacktrace").unwrap_or_default();
                let body = body_string(&r.body);
                let time = if r.time_unix_nano > 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                self.group(
                    true,
                    Occurrence {
                        service: &svc,
                        ty,
                        message: &body,
                        stack: &stack,
                        time,
                        trace_id: &r.trace_id,
                    },
                    lim,
                );
            }
        }
    }

    pub fn add_metrics(&mut self, rm: &ResourceMetrics) {
        let svc = service_name(&rm.resource);
        let mut n = 0u64;
        for m in rm.scope_metrics.iter().flat_map(|s| s.metrics.iter()) {
            n += match &m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.len(),
                Some(metric::Data::Sum(g)) => g.data_points.len(),
                Some(metric::Data::Histogram(g)) => g.data_points.len(),
                Some(metric::Data::ExponentialHistogram(g)) => g.data_points.len(),
                Some(metric::Data::Summary(g)) => g.data_points.len(),
                None => 0,
            } as u64;
        }
        match self.service(svc) {
            Some(s) => s.metric_points += n,
            None => self.other.service_items += n,
        }
        self.totals.metric_points += n;
    }

    /// Fills the derived fields (rates, quantiles, completeness) before the summary is shown
    /// or saved.
    pub fn finalize(&mut self) {
        let rate = |e: u64, n: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
        self.totals.error_rate = rate(self.totals.error_spans, self.totals.spans);
        for s in self.services.values_mut() {
            s.error_rate = rate(s.error_spans, s.spans);
            for op in s.operations.values_mut() {
                op.p50_ms = op.sketch.quantile(0.5);
                op.p95_ms = op.sketch.quantile(0.95);
                op.p99_ms = op.sketch.quantile(0.99);
                op.max_ms = (op.sketch.count > 0).then_some(op.sketch.max);
            }
        }
        self.complete = self.dropped.total() == 0;
    }

    /// Exception types per service: (service, type).
    pub fn exception_types(&self) -> std::collections::BTreeSet<(String, String)> {
        self.exception_groups
            .iter()
            .map(|g| (g.service.clone(), g.ty.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status, span::Event};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn groups_are_bounded_with_other_bucket() {
        let lim = Limits {
            max_groups: 2,
            max_operations: 10,
        };
        let spans = (0..5)
            .map(|i| Span {
                name: "op".into(),
                trace_id: vec![i as u8; 16],
                start_time_unix_nano: 1_000_000,
                end_time_unix_nano: 3_000_000,
                status: Some(Status {
                    code: StatusCode::Error as i32,
                    ..Default::default()
                }),
                events: vec![Event {
                    name: "exception".into(),
                    time_unix_nano: 10 + i,
                    attributes: vec![
                        kv("exception.type", &format!("E{}", i % 3)),
                        kv("exception.message", &format!("id {i}")),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let rs = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut s = Summary::new("r", RunSource::Api, 0);
        s.add_spans(&rs, &lim);
        s.finalize();
        assert_eq!(s.totals.spans, 5);
        assert_eq!(s.totals.error_rate, 1.0);
        assert_eq!(s.exception_groups.len(), 2);
        let grouped: u64 = s.exception_groups.iter().map(|g| g.count).sum();
        assert_eq!(grouped + s.other.exceptions, 5);
        assert_eq!(s.exception_groups[0].count, 2); // E0: i=0,3
        assert_eq!(s.exception_groups[0].example_trace_ids.len(), 2);
        let op = &s.services["svc"].operations["op"];
        assert!((op.p95_ms.unwrap_or(0.0) - 2.0).abs() < 0.05);
    }
}

/// One line of `GET /runs`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Open, ended or expired.
    pub state: RunState,
    /// How the run began (API call or a `test.run.id` attribute seen in data).
    pub source: RunSource,
    /// Labels given at start.
    pub labels: BTreeMap<String, String>,
    /// Resource attribute matchers given at start (JSON key `match`).
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Start time, Unix milliseconds.
    pub started_unix_ms: u64,
    /// End time, Unix milliseconds; absent while open.
    pub ended_unix_ms: Option<u64>,
    /// Spans counted for the run so far.
    pub spans: u64,
    /// Log records counted for the run so far.
    pub log_records: u64,
    /// Exceptions counted for the run so far.
    pub exceptions: u64,
    /// When an open run expires (`max_duration` after its start), Unix milliseconds.
    #[serde(default)]
    pub expires_unix_ms: u64,
    /// The tier's run-start it comes from ([`Summary::origin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl RunInfo {
    /// The listing order: newest first, then by id. A page token is this key of the last run
    /// of the previous page, so pages stay stable while runs are added.
    pub fn order_key(&self) -> (std::cmp::Reverse<u64>, &str) {
        (std::cmp::Reverse(self.started_unix_ms), self.id.as_str())
    }

    /// The page token that continues after this run: `<started_unix_ms>.<hex of id>`.
    pub fn page_token(&self) -> String {
        format!(
            "{}.{}",
            self.started_unix_ms,
            hex::encode(self.id.as_bytes())
        )
    }
}
