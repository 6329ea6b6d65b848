//! OTLP metrics -> Prometheus remote-write 1.0, as pure functions (no I/O). The rules follow
//! Prometheus' own OTLP translator (`otlptranslator`, `storage/remote/otlptranslator`) and the
//! Collector's `prometheusremotewrite` exporter, so that dashboards and alerts written against
//! the Collector keep working; docs/prometheusremotewrite.md ("Translation") lists them with
//! sources. Parts: `naming` (metric, unit and label names), `labels` (label sets),
//! `histogram` (exponential -> native), `series` (merge, order, split, encode).
//!
//! Choices where the references leave room (documented in docs/prometheusremotewrite.md):
//! - delta (and unspecified) temporality sums and histograms are refused and counted
//!   (`delta_temporality`, `unspecified_temporality`), never written as counters;
//! - points with `time_unix_nano == 0` are refused and counted (`zero_timestamp`): Prometheus
//!   would reject a 1970 sample and fail the whole request with a 400;
//! - metrics whose name sanitizes to nothing are refused (`invalid_metric_name`);
//! - exponential histograms with scale < -4 are refused (`unsupported_scale`).

pub(crate) mod hash;
pub(crate) mod histogram;
pub(crate) mod labels;
pub(crate) mod naming;
pub(crate) mod points;
pub(crate) mod series;

#[cfg(test)]
mod tests;

use crate::proto::prometheus::{
    Exemplar, Label, MetricMetadata, Sample, TimeSeries, metric_metadata::MetricType,
};
use crate::protowire::{ReadError, fields};
use labels::{Context, Lbl, NameCache};
use naming::NameKind;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use points::{Attr, Data, Kind, Point};
use prost::Message;
use series::{EncLabel, SeriesSet, Template};
pub use series::{Finished, write_requests};
use std::collections::HashMap;

/// Bits of Prometheus' stale marker (a NaN distinct from an ordinary NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// OTLP `DataPointFlags.NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;
/// Prometheus refuses exemplars whose labels are longer than this (in runes, names + values).
const EXEMPLAR_MAX_LABEL_RUNES: usize = 128;

/// Translation options (the exporter's config keys that shape data).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Prefix for every metric name (already sanitized by [`Settings::new`]).
    pub namespace: String,
    /// Labels added to every series unless the series already has the name. Sorted.
    pub external_labels: Vec<Label>,
    /// Unit, `_total` and `_ratio` suffixes (`add_metric_suffixes`).
    pub add_metric_suffixes: bool,
    /// Copy all resource attributes onto every series (`resource_to_telemetry_conversion`).
    pub resource_to_telemetry: bool,
    /// Emit `target_info` per resource (`target_info.enabled`).
    pub target_info: bool,
    /// Build `MetricMetadata` (`send_metadata`).
    pub send_metadata: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: String::new(),
            external_labels: Vec::new(),
            add_metric_suffixes: true,
            resource_to_telemetry: false,
            target_info: true,
            send_metadata: false,
        }
    }
}

impl Settings {
    /// Settings with a sanitized namespace and validated, sorted external labels.
    pub fn new(
        namespace: &str,
        external_labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Settings, String> {
        let mut ext = Vec::with_capacity(external_labels.len());
        for (k, v) in external_labels {
            if !naming::is_valid_label_name(k) || k.starts_with("__") {
                return Err(format!("external_labels: invalid label name {k:?}"));
            }
            if v.is_empty() {
                return Err(format!("external_labels: empty value for {k:?}"));
            }
            ext.push(Label {
                name: k.clone(),
                value: v.clone(),
            });
        }
        Ok(Settings {
            namespace: naming::clean_namespace(namespace),
            external_labels: ext,
            ..Settings::default()
        })
    }
}

/// Why data points were not translated (a low-cardinality reason for self-metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// A delta sum or histogram (remote-write carries cumulative values); the
    /// `deltatocumulative` processor turns them into cumulative ones first.
    DeltaTemporality,
    /// A sum or histogram with `AGGREGATION_TEMPORALITY_UNSPECIFIED`.
    UnspecifiedTemporality,
    /// A metric whose name leaves nothing but underscores once made a valid Prometheus name.
    InvalidMetricName,
    /// An exponential histogram with a scale below the lowest native-histogram schema (-4).
    UnsupportedScale,
    /// A data point with `time_unix_nano` 0.
    ZeroTimestamp,
}

impl DropReason {
    /// The `reason` label value (`delta_temporality`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DeltaTemporality => "delta_temporality",
            DropReason::UnspecifiedTemporality => "unspecified_temporality",
            DropReason::InvalidMetricName => "invalid_metric_name",
            DropReason::UnsupportedScale => "unsupported_scale",
            DropReason::ZeroTimestamp => "zero_timestamp",
        }
    }
}

/// The result of translating one OTLP request, with series already encoded (hot path).
#[derive(Debug, Default)]
pub struct Encoded {
    /// Series with their samples, histograms and exemplars, ready to encode.
    pub series: Finished,
    /// One `MetricMetadata` (type, help, unit) per metric family.
    pub metadata: Vec<MetricMetadata>,
    /// Data points refused, by reason (sorted by reason).
    pub dropped: Vec<(DropReason, u64)>,
    /// Data points translated.
    pub points: u64,
}

impl Encoded {
    /// Encoded, uncompressed `WriteRequest`s under `max_bytes` each.
    pub fn requests(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        write_requests(&self.series, &self.metadata, max_bytes)
    }
}

/// The result of translating one OTLP request, as generated types (tests, debugging).
#[derive(Debug, Default)]
pub struct Translation {
    /// The `TimeSeries` of the request.
    pub series: Vec<TimeSeries>,
    /// One `MetricMetadata` (type, help, unit) per metric family.
    pub metadata: Vec<MetricMetadata>,
    /// Data points refused, by reason (sorted by reason).
    pub dropped: Vec<(DropReason, u64)>,
    /// Data points translated.
    pub points: u64,
}

impl Translation {
    /// Data points refused, all reasons together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

/// Translates a request into generated `TimeSeries` (for tests and debugging).
pub fn translate(req: &ExportMetricsServiceRequest, s: &Settings) -> Translation {
    let e = translate_encoded(req, s);
    Translation {
        series: e.series.to_time_series(),
        metadata: e.metadata,
        dropped: e.dropped,
        points: e.points,
    }
}

/// Translates a request given as a generated type (encodes it and runs [`translate_bytes`];
/// a request built from generated types always reads back).
pub fn translate_encoded(req: &ExportMetricsServiceRequest, s: &Settings) -> Encoded {
    translate_bytes(&req.encode_to_vec(), s).unwrap_or_default()
}

/// Translates every resource/scope/metric of an encoded `ExportMetricsServiceRequest`,
/// reading it straight from the wire. Fails only on malformed protobuf.
pub fn translate_bytes(otlp: &[u8], s: &Settings) -> Result<Encoded, ReadError> {
    let mut t = Translator {
        s,
        // Sized from the input so the arena rarely grows (growing copies it).
        set: SeriesSet::with_capacity((otlp.len() / 64).max(64), otlp.len().saturating_mul(4)),
        metadata: Vec::new(),
        metadata_seen: HashMap::new(),
        dropped: HashMap::new(),
        points: 0,
        cache: NameCache::default(),
        template: Template::default(),
        label_buf: String::new(),
        le_cache: Vec::new(),
    };
    let external: Vec<Lbl<'static>> = s
        .external_labels
        .iter()
        .map(|l| Lbl::owned(&l.name, l.value.clone()))
        .collect();
    let mut point = Point::default();
    const REQUEST: &str = "ExportMetricsServiceRequest";
    for f in fields(otlp, REQUEST) {
        if let (n @ 1, rm) = f? {
            t.resource(rm.bytes(REQUEST, n)?, &external, &mut point)?;
        }
    }
    let mut dropped: Vec<(DropReason, u64)> = t.dropped.into_iter().collect();
    dropped.sort();
    Ok(Encoded {
        series: t.set.finish(),
        metadata: t.metadata,
        dropped,
        points: t.points,
    })
}

fn scope_overwrite(job_instance: &[Lbl<'static>], name: &str, version: &str) -> Vec<Lbl<'static>> {
    let mut v = job_instance.to_vec();
    if !name.is_empty() {
        v.push(Lbl::owned(labels::SCOPE_NAME, name));
        if !version.is_empty() {
            v.push(Lbl::owned(labels::SCOPE_VERSION, version));
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// ns -> ms by integer division.
pub fn to_millis(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn is_stale(flags: u32) -> bool {
    flags & FLAG_NO_RECORDED_VALUE != 0
}

fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Exemplars as remote-write exemplars: `trace_id` / `span_id` (lowercase hex, when set)
/// plus filtered attributes while the labels stay within Prometheus' 128-rune limit.
pub fn exemplar(e: &points::Exemplar<'_>, cache: &mut NameCache) -> Exemplar {
    let mut labels = Vec::with_capacity(2);
    let mut runes = 0usize;
    for (name, id) in [("trace_id", e.trace_id), ("span_id", e.span_id)] {
        if id.iter().any(|&b| b != 0) {
            let v = hex::encode(id);
            runes += name.len() + v.len();
            labels.push(Label {
                name: name.into(),
                value: v,
            });
        }
    }
    for l in labels::attributes_to_labels(&e.attrs, &[], cache) {
        if labels.iter().any(|x| *x.name == *l.name) {
            continue;
        }
        let n = l.name.chars().count() + l.value.chars().count();
        if runes + n > EXEMPLAR_MAX_LABEL_RUNES {
            continue;
        }
        runes += n;
        labels.push(Label {
            name: l.name.to_string(),
            value: l.value.into_owned(),
        });
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    Exemplar {
        labels,
        value: e.value,
        timestamp: to_millis(e.time_unix_nano),
    }
}

struct Translator<'a> {
    s: &'a Settings,
    set: SeriesSet,
    metadata: Vec<MetricMetadata>,
    metadata_seen: HashMap<String, ()>,
    dropped: HashMap<DropReason, u64>,
    points: u64,
    cache: NameCache,
    /// Reused: the current point's encoded base labels.
    template: Template,
    /// Reused: a `quantile` value.
    label_buf: String,
    /// Encoded `le` labels by bucket index, with the bound's bits they were made from.
    le_cache: Vec<(u64, EncLabel)>,
}

impl Translator<'_> {
    fn drop(&mut self, r: DropReason, n: usize) {
        if n > 0 {
            *self.dropped.entry(r).or_insert(0) += n as u64;
        }
    }

    /// One `ResourceMetrics`: its resource labels, then every scope's metrics, then
    /// `target_info`.
    fn resource<'b>(
        &mut self,
        rm: &'b [u8],
        external: &[Lbl<'static>],
        point: &mut Point<'b>,
    ) -> Result<(), ReadError> {
        let mut resource: Vec<Attr<'b>> = Vec::new();
        const RM: &str = "ResourceMetrics";
        const SM: &str = "ScopeMetrics";
        for f in fields(rm, RM) {
            if let (n @ 1, r) = f? {
                points::read_attrs(r.bytes(RM, n)?, "Resource", 1, &mut resource)?;
            }
        }
        let s = self.s;
        let job_instance = labels::job_instance(&resource);
        let mut fill: Vec<Lbl<'static>> = Vec::new();
        if s.resource_to_telemetry {
            fill = labels::attributes_to_labels(&resource, &[], &mut self.cache)
                .into_iter()
                .map(|l| Lbl {
                    name: l.name,
                    value: std::borrow::Cow::Owned(l.value.into_owned()),
                })
                .collect();
        }
        for e in external {
            if fill.iter().all(|l| l.name != e.name) {
                fill.push(e.clone());
            }
        }
        fill.sort_by(|a, b| a.name.cmp(&b.name));
        let mut latest_ms: Option<i64> = None;
        for f in fields(rm, RM) {
            let (n @ 2, sm) = f? else { continue };
            let sm = sm.bytes(RM, n)?;
            let (mut name, mut version) = ("", "");
            for f in fields(sm, SM) {
                if let (n @ 1, sc) = f? {
                    (name, version) = points::read_scope(sc.bytes(SM, n)?)?;
                }
            }
            let ctx = Context {
                overwrite: scope_overwrite(&job_instance, name, version),
                fill: fill.clone(),
            };
            for f in fields(sm, SM) {
                if let (n @ 2, m) = f? {
                    if let Some(ts) = self.metric(m.bytes(SM, n)?, &ctx, point)? {
                        latest_ms = Some(latest_ms.map_or(ts, |l| l.max(ts)));
                    }
                }
            }
        }
        if let Some(ts) = latest_ms.filter(|_| s.target_info) {
            self.target_info(&resource, &job_instance, external, ts);
        }
        Ok(())
    }

    fn name(&mut self, m: &points::Metric<'_>, kind: NameKind, points: usize) -> Option<String> {
        match naming::metric_name(
            m.name,
            m.unit,
            kind,
            &self.s.namespace,
            self.s.add_metric_suffixes,
        ) {
            Ok(n) => Some(n),
            Err(_) => {
                self.drop(DropReason::InvalidMetricName, points);
                None
            }
        }
    }

    fn add_metadata(&mut self, family: &str, ty: MetricType, help: &str, unit: &str) {
        if !self.s.send_metadata || self.metadata_seen.contains_key(family) {
            return;
        }
        self.metadata_seen.insert(family.to_string(), ());
        self.metadata.push(MetricMetadata {
            r#type: ty as i32,
            metric_family_name: family.to_string(),
            help: help.to_string(),
            unit: naming::unit_name(unit),
        });
    }

    /// Checks temporality; counts refused points.
    fn cumulative(&mut self, temporality: i32, n: usize) -> bool {
        if temporality == AggregationTemporality::Cumulative as i32 {
            return true;
        }
        let r = if temporality == AggregationTemporality::Delta as i32 {
            DropReason::DeltaTemporality
        } else {
            DropReason::UnspecifiedTemporality
        };
        self.drop(r, n);
        false
    }

    /// Translates one metric; returns the latest timestamp written (ms).
    fn metric<'b>(
        &mut self,
        raw: &'b [u8],
        ctx: &Context,
        point: &mut Point<'b>,
    ) -> Result<Option<i64>, ReadError> {
        let m = points::read_metric(raw)?;
        let Some(data) = m.data else { return Ok(None) };
        let (help, unit) = (m.description, m.unit);
        let (body, kind, family, ty) = match data {
            Data::Gauge(b) => (b, Kind::Number, NameKind::Gauge, MetricType::Gauge),
            Data::Sum(b) => (b, Kind::Number, NameKind::Counter, MetricType::Counter),
            Data::Histogram(b) => (b, Kind::Histogram, NameKind::Other, MetricType::Histogram),
            Data::Exponential(b) => (b, Kind::Exponential, NameKind::Other, MetricType::Histogram),
            Data::Summary(b) => (b, Kind::Summary, NameKind::Other, MetricType::Summary),
        };
        let h = points::read_data_header(&data)?;
        let (family, ty, counter) = match data {
            Data::Sum(_) if !h.monotonic => (NameKind::Gauge, MetricType::Gauge, false),
            Data::Sum(_) => (family, ty, true),
            _ => (family, ty, false),
        };
        let temporal = matches!(
            data,
            Data::Sum(_) | Data::Histogram(_) | Data::Exponential(_)
        );
        if temporal && !self.cumulative(h.temporality, h.points) {
            return Ok(None);
        }
        let Some(name) = self.name(&m, family, h.points) else {
            return Ok(None);
        };
        self.add_metadata(&name, ty, help, unit);
        let names = SeriesNames::new(&name, kind);
        let mut latest = None;
        for dp in points::data_points(body) {
            point.read(kind, dp?)?;
            let ts = match kind {
                Kind::Number => self.number(&names, point, ctx, counter)?,
                Kind::Histogram => self.histogram(&names, point, ctx)?,
                Kind::Exponential => self.exponential(&names, point, ctx)?,
                Kind::Summary => self.summary(&names, point, ctx)?,
            };
            latest = latest.max(ts);
        }
        Ok(latest)
    }

    /// Common checks of a point: on success the template holds its base labels (with room
    /// for `extra`) and the timestamp (ms) is returned; otherwise a drop is counted.
    fn point(&mut self, p: &Point<'_>, ctx: &Context, extra: Option<&str>) -> Option<i64> {
        if p.time_unix_nano == 0 {
            self.drop(DropReason::ZeroTimestamp, 1);
            return None;
        }
        self.points += 1;
        let own = labels::attributes_to_labels(&p.attrs, &[], &mut self.cache);
        let base = labels::apply_context(own, ctx);
        self.template.reset(&base, extra);
        Some(to_millis(p.time_unix_nano))
    }

    /// Writes one float sample to the series of the current template named `name`.
    fn sample(
        &mut self,
        name: &EncLabel,
        extra: Option<&EncLabel>,
        sample: Sample,
        ex: Vec<Exemplar>,
    ) {
        self.set.add_sample(&self.template, name, extra, sample, ex);
    }

    fn exemplars(&mut self, p: &Point<'_>) -> Result<Vec<Exemplar>, ReadError> {
        p.exemplars
            .iter()
            .map(|raw| Ok(exemplar(&points::read_exemplar(raw)?, &mut self.cache)))
            .collect()
    }

    fn number(
        &mut self,
        n: &SeriesNames,
        p: &Point<'_>,
        ctx: &Context,
        counter: bool,
    ) -> Result<Option<i64>, ReadError> {
        let Some(ts) = self.point(p, ctx, None) else {
            return Ok(None);
        };
        let value = if is_stale(p.flags) {
            stale_nan()
        } else {
            p.value
        };
        let exemplars = if counter {
            self.exemplars(p)?
        } else {
            Vec::new()
        };
        let sample = Sample {
            value,
            timestamp: ts,
        };
        self.sample(&n.name, None, sample, exemplars);
        Ok(Some(ts))
    }

    fn histogram(
        &mut self,
        n: &SeriesNames,
        p: &Point<'_>,
        ctx: &Context,
    ) -> Result<Option<i64>, ReadError> {
        let Some(ts) = self.point(p, ctx, Some("le")) else {
            return Ok(None);
        };
        let stale = is_stale(p.flags);
        let val = |v: f64| Sample {
            value: if stale { stale_nan() } else { v },
            timestamp: ts,
        };
        if let Some(sum) = p.sum {
            self.sample(&n.sum, None, val(sum), Vec::new());
        }
        self.sample(&n.count, None, val(p.count as f64), Vec::new());
        let bounds = &p.bounds;
        let nb = bounds.len().min(p.bucket_counts.len());
        // Exemplars go to the first bucket whose bound is >= the value, else +Inf.
        let mut ex_by_bucket: Vec<Vec<Exemplar>> = Vec::new();
        if !p.exemplars.is_empty() {
            ex_by_bucket = vec![Vec::new(); nb + 1];
            for ex in self.exemplars(p)? {
                let i = bounds[..nb]
                    .iter()
                    .position(|&b| f64::from_bits(b) >= ex.value)
                    .unwrap_or(nb);
                ex_by_bucket[i].push(ex);
            }
        }
        let mut take = |i: usize| {
            ex_by_bucket
                .get_mut(i)
                .map(std::mem::take)
                .unwrap_or_default()
        };
        // Bounds are usually the same for every point of a metric: format each once.
        let mut les = std::mem::take(&mut self.le_cache);
        if les.len() < nb {
            les.resize(nb, (u64::MAX, EncLabel::default()));
        }
        let mut cumulative: u64 = 0;
        for (i, (bound, count)) in bounds.iter().zip(&p.bucket_counts).enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let (bits, le) = &mut les[i];
            if *bits != *bound || le.is_empty() {
                *bits = *bound;
                let mut text = std::mem::take(&mut self.label_buf);
                text.clear();
                naming::write_float(&mut text, f64::from_bits(*bound));
                le.set("le", &text);
                self.label_buf = text;
            }
            self.sample(&n.bucket, Some(le), val(cumulative as f64), take(i));
        }
        self.le_cache = les;
        let inf = take(nb);
        self.sample(&n.bucket, Some(&n.inf), val(p.count as f64), inf);
        Ok(Some(ts))
    }

    fn exponential(
        &mut self,
        n: &SeriesNames,
        p: &Point<'_>,
        ctx: &Context,
    ) -> Result<Option<i64>, ReadError> {
        if p.scale < histogram::MIN_SCHEMA {
            self.drop(DropReason::UnsupportedScale, 1);
            return Ok(None);
        }
        let Some(ts) = self.point(p, ctx, None) else {
            return Ok(None);
        };
        let Ok(h) = histogram::to_native(p, ts, is_stale(p.flags)) else {
            self.drop(DropReason::UnsupportedScale, 1);
            return Ok(None);
        };
        let exemplars = self.exemplars(p)?;
        self.set
            .add_histogram(&self.template, &n.name, h, exemplars);
        Ok(Some(ts))
    }

    fn summary(
        &mut self,
        n: &SeriesNames,
        p: &Point<'_>,
        ctx: &Context,
    ) -> Result<Option<i64>, ReadError> {
        let Some(ts) = self.point(p, ctx, Some("quantile")) else {
            return Ok(None);
        };
        let stale = is_stale(p.flags);
        let val = |v: f64| Sample {
            value: if stale { stale_nan() } else { v },
            timestamp: ts,
        };
        self.sample(&n.sum, None, val(p.sum.unwrap_or(0.0)), Vec::new());
        self.sample(&n.count, None, val(p.count as f64), Vec::new());
        let mut q = std::mem::take(&mut self.label_buf);
        let mut label = EncLabel::default();
        for &(quantile, value) in &p.quantiles {
            q.clear();
            naming::write_float(&mut q, quantile);
            label.set("quantile", &q);
            self.sample(&n.name, Some(&label), val(value), Vec::new());
        }
        self.label_buf = q;
        Ok(Some(ts))
    }

    /// `target_info` = 1 with `job`, `instance` and the non-identifying resource attributes,
    /// when the resource has any and job or instance exists.
    fn target_info(
        &mut self,
        resource: &[Attr<'_>],
        job_instance: &[Lbl<'static>],
        external: &[Lbl<'static>],
        ts: i64,
    ) {
        if job_instance.is_empty() {
            return;
        }
        let skip = [
            labels::SERVICE_NAME,
            labels::SERVICE_NAMESPACE,
            labels::SERVICE_INSTANCE_ID,
        ];
        let attrs = labels::attributes_to_labels(resource, &skip, &mut self.cache);
        if attrs.is_empty() {
            return;
        }
        let ctx = Context {
            overwrite: job_instance.to_vec(),
            fill: external.to_vec(),
        };
        let base = labels::apply_context(attrs, &ctx);
        let name = if self.s.namespace.is_empty() {
            "target_info".to_string()
        } else {
            format!("{}_target_info", self.s.namespace)
        };
        self.add_metadata(&name, MetricType::Gauge, "Target metadata", "");
        let sample = Sample {
            value: 1.0,
            timestamp: ts,
        };
        self.template.reset(&base, None);
        self.set.add_sample(
            &self.template,
            &EncLabel::name(&name),
            None,
            sample,
            Vec::new(),
        );
    }
}

/// The `__name__` labels of one metric's series (the family name and its `_sum` /
/// `_count` / `_bucket`), plus the `le="+Inf"` label, each encoded once per metric.
struct SeriesNames {
    name: EncLabel,
    sum: EncLabel,
    count: EncLabel,
    bucket: EncLabel,
    inf: EncLabel,
}

impl SeriesNames {
    fn new(name: &str, kind: Kind) -> SeriesNames {
        let with = |suffix: &str| match kind {
            Kind::Histogram | Kind::Summary => EncLabel::name(&format!("{name}{suffix}")),
            _ => EncLabel::default(),
        };
        let hist = kind == Kind::Histogram;
        SeriesNames {
            name: EncLabel::name(name),
            sum: with("_sum"),
            count: with("_count"),
            bucket: if hist {
                EncLabel::name(&format!("{name}_bucket"))
            } else {
                EncLabel::default()
            },
            inf: if hist {
                EncLabel::new("le", "+Inf")
            } else {
                EncLabel::default()
            },
        }
    }
}
