//! OTLP metrics -> Prometheus remote-write 1.0, as pure functions (no I/O). The rules follow
//! Prometheus' own OTLP translator (`otlptranslator`, `storage/remote/otlptranslator`) and the
//! Collector's `prometheusremotewrite` exporter, so that dashboards and alerts written against
//! the Collector keep working; `/work/shared/specs/protocols.md` section C lists them with
//! sources. Parts: [`naming`] (metric, unit and label names), [`labels`] (label sets),
//! [`histogram`] (exponential -> native), [`series`] (merge, order, split, encode).
//!
//! Choices where the references leave room (documented in docs/prometheusremotewrite.md):
//! - delta (and unspecified) temporality sums and histograms are refused and counted
//!   (`delta_temporality`, `unspecified_temporality`), never written as counters;
//! - points with `time_unix_nano == 0` are refused and counted (`zero_timestamp`): Prometheus
//!   would reject a 1970 sample and fail the whole request with a 400;
//! - metrics whose name sanitizes to nothing are refused (`invalid_metric_name`);
//! - exponential histograms with scale < -4 are refused (`unsupported_scale`).

pub mod histogram;
pub mod labels;
pub mod naming;
pub mod series;

#[cfg(test)]
mod tests;

use crate::proto::prometheus::{
    Exemplar, Label, MetricMetadata, Sample, TimeSeries, metric_metadata::MetricType,
};
use labels::{Context, Lbl, NameCache};
use naming::NameKind;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp, AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint, metric::Data,
};
pub use series::{EncSeries, snappy, write_requests};
use series::{SeriesSet, encode_labels};
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
    DeltaTemporality,
    UnspecifiedTemporality,
    InvalidMetricName,
    UnsupportedScale,
    ZeroTimestamp,
}

impl DropReason {
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
    pub series: Vec<EncSeries>,
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
    pub series: Vec<TimeSeries>,
    pub metadata: Vec<MetricMetadata>,
    /// Data points refused, by reason (sorted by reason).
    pub dropped: Vec<(DropReason, u64)>,
    /// Data points translated.
    pub points: u64,
}

impl Translation {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

/// Translates a request into generated `TimeSeries` (decodes [`translate_encoded`]'s output;
/// for tests and debugging).
pub fn translate(req: &ExportMetricsServiceRequest, s: &Settings) -> Translation {
    let e = translate_encoded(req, s);
    Translation {
        series: e.series.iter().map(EncSeries::to_time_series).collect(),
        metadata: e.metadata,
        dropped: e.dropped,
        points: e.points,
    }
}

/// Translates every resource/scope/metric of a request.
pub fn translate_encoded(req: &ExportMetricsServiceRequest, s: &Settings) -> Encoded {
    let mut t = Translator {
        s,
        set: SeriesSet::with_capacity(256),
        metadata: Vec::new(),
        metadata_seen: HashMap::new(),
        dropped: HashMap::new(),
        points: 0,
        cache: NameCache::default(),
        scratch: Vec::with_capacity(512),
    };
    let external: Vec<Lbl<'static>> = s
        .external_labels
        .iter()
        .map(|l| Lbl::owned(&l.name, l.value.clone()))
        .collect();
    for rm in &req.resource_metrics {
        let resource: &[KeyValue] = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let job_instance = labels::job_instance(resource);
        let mut fill: Vec<Lbl<'static>> = Vec::new();
        if s.resource_to_telemetry {
            fill = labels::attributes_to_labels(resource, &[], &mut t.cache)
                .into_iter()
                .map(|l| Lbl {
                    name: l.name,
                    value: std::borrow::Cow::Owned(l.value.into_owned()),
                })
                .collect();
        }
        for e in &external {
            if fill.iter().all(|l| l.name != e.name) {
                fill.push(e.clone());
            }
        }
        fill.sort_by(|a, b| a.name.cmp(&b.name));
        let mut latest_ms: Option<i64> = None;
        for sm in &rm.scope_metrics {
            let ctx = Context {
                overwrite: scope_overwrite(&job_instance, sm.scope.as_ref()),
                fill: fill.clone(),
            };
            for m in &sm.metrics {
                if let Some(ts) = t.metric(m, &ctx) {
                    latest_ms = Some(latest_ms.map_or(ts, |l| l.max(ts)));
                }
            }
        }
        if let Some(ts) = latest_ms.filter(|_| s.target_info) {
            t.target_info(resource, &job_instance, &external, ts);
        }
    }
    let mut dropped: Vec<(DropReason, u64)> = t.dropped.into_iter().collect();
    dropped.sort();
    Encoded {
        series: t.set.finish(),
        metadata: t.metadata,
        dropped,
        points: t.points,
    }
}

fn scope_overwrite(
    job_instance: &[Lbl<'static>],
    scope: Option<&InstrumentationScope>,
) -> Vec<Lbl<'static>> {
    let mut v = job_instance.to_vec();
    if let Some(sc) = scope.filter(|sc| !sc.name.is_empty()) {
        v.push(Lbl::owned(labels::SCOPE_NAME, sc.name.clone()));
        if !sc.version.is_empty() {
            v.push(Lbl::owned(labels::SCOPE_VERSION, sc.version.clone()));
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

fn number_value(dp: &NumberDataPoint) -> f64 {
    use otlp::number_data_point::Value;
    match dp.value {
        Some(Value::AsDouble(d)) => d,
        Some(Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// Exemplars as remote-write exemplars: `trace_id` / `span_id` (lowercase hex, when set)
/// plus filtered attributes while the labels stay within Prometheus' 128-rune limit.
pub fn exemplar(e: &otlp::Exemplar, cache: &mut NameCache) -> Exemplar {
    use otlp::exemplar::Value;
    let mut labels = Vec::with_capacity(2);
    let mut runes = 0usize;
    for (name, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
        if id.iter().any(|&b| b != 0) {
            let v = hex::encode(id);
            runes += name.len() + v.len();
            labels.push(Label {
                name: name.into(),
                value: v,
            });
        }
    }
    for l in labels::attributes_to_labels(&e.filtered_attributes, &[], cache) {
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
        value: match e.value {
            Some(Value::AsDouble(d)) => d,
            Some(Value::AsInt(i)) => i as f64,
            None => 0.0,
        },
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
    /// Reused buffer for a series' encoded labels.
    scratch: Vec<u8>,
}

impl Translator<'_> {
    fn drop(&mut self, r: DropReason, n: usize) {
        if n > 0 {
            *self.dropped.entry(r).or_insert(0) += n as u64;
        }
    }

    fn name(&mut self, m: &Metric, kind: NameKind, points: usize) -> Option<String> {
        match naming::metric_name(
            &m.name,
            &m.unit,
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
    fn metric(&mut self, m: &Metric, ctx: &Context) -> Option<i64> {
        let (help, unit) = (m.description.as_str(), m.unit.as_str());
        match m.data.as_ref()? {
            Data::Gauge(g) => {
                let name = self.name(m, NameKind::Gauge, g.data_points.len())?;
                self.add_metadata(&name, MetricType::Gauge, help, unit);
                self.numbers(&name, &g.data_points, ctx, false)
            }
            Data::Sum(sum) => {
                if !self.cumulative(sum.aggregation_temporality, sum.data_points.len()) {
                    return None;
                }
                let (kind, ty) = if sum.is_monotonic {
                    (NameKind::Counter, MetricType::Counter)
                } else {
                    (NameKind::Gauge, MetricType::Gauge)
                };
                let name = self.name(m, kind, sum.data_points.len())?;
                self.add_metadata(&name, ty, help, unit);
                self.numbers(&name, &sum.data_points, ctx, sum.is_monotonic)
            }
            Data::Histogram(h) => {
                if !self.cumulative(h.aggregation_temporality, h.data_points.len()) {
                    return None;
                }
                let name = self.name(m, NameKind::Other, h.data_points.len())?;
                self.add_metadata(&name, MetricType::Histogram, help, unit);
                self.histograms(&name, &h.data_points, ctx)
            }
            Data::ExponentialHistogram(h) => {
                if !self.cumulative(h.aggregation_temporality, h.data_points.len()) {
                    return None;
                }
                let name = self.name(m, NameKind::Other, h.data_points.len())?;
                self.add_metadata(&name, MetricType::Histogram, help, unit);
                self.exponentials(&name, &h.data_points, ctx)
            }
            Data::Summary(sm) => {
                let name = self.name(m, NameKind::Other, sm.data_points.len())?;
                self.add_metadata(&name, MetricType::Summary, help, unit);
                self.summaries(&name, &sm.data_points, ctx)
            }
        }
    }

    /// Common checks of a point: returns (base labels, timestamp ms) or counts a drop.
    fn point<'p>(
        &mut self,
        attrs: &'p [KeyValue],
        time_ns: u64,
        ctx: &'p Context,
    ) -> Option<(Vec<Lbl<'p>>, i64)> {
        if time_ns == 0 {
            self.drop(DropReason::ZeroTimestamp, 1);
            return None;
        }
        self.points += 1;
        let own = labels::attributes_to_labels(attrs, &[], &mut self.cache);
        Some((labels::apply_context(own, ctx), to_millis(time_ns)))
    }

    /// Writes one float sample to the series `base` + `__name__` (+ `extra`).
    fn sample(
        &mut self,
        base: &[Lbl<'_>],
        name: &str,
        extra: Option<(&str, &str)>,
        sample: Sample,
        exemplars: Vec<Exemplar>,
    ) {
        encode_labels(base, name, extra, &mut self.scratch);
        self.set.add_sample(&self.scratch, sample, exemplars);
    }

    fn numbers(
        &mut self,
        name: &str,
        points: &[NumberDataPoint],
        ctx: &Context,
        counter: bool,
    ) -> Option<i64> {
        let mut latest = None;
        for dp in points {
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let value = if is_stale(dp.flags) {
                stale_nan()
            } else {
                number_value(dp)
            };
            let exemplars = if counter {
                dp.exemplars
                    .iter()
                    .map(|e| exemplar(e, &mut self.cache))
                    .collect()
            } else {
                Vec::new()
            };
            let sample = Sample {
                value,
                timestamp: ts,
            };
            self.sample(&base, name, None, sample, exemplars);
            latest = latest.max(Some(ts));
        }
        latest
    }

    fn histograms(
        &mut self,
        name: &str,
        points: &[HistogramDataPoint],
        ctx: &Context,
    ) -> Option<i64> {
        let mut latest = None;
        let (sum_name, count_name, bucket_name) = (
            format!("{name}_sum"),
            format!("{name}_count"),
            format!("{name}_bucket"),
        );
        let mut le = String::new();
        for dp in points {
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let stale = is_stale(dp.flags);
            let val = |v: f64| Sample {
                value: if stale { stale_nan() } else { v },
                timestamp: ts,
            };
            if let Some(sum) = dp.sum {
                self.sample(&base, &sum_name, None, val(sum), Vec::new());
            }
            self.sample(&base, &count_name, None, val(dp.count as f64), Vec::new());
            let n = dp.explicit_bounds.len().min(dp.bucket_counts.len());
            // Exemplars go to the first bucket whose bound is >= the value, else +Inf.
            let mut ex_by_bucket: Vec<Vec<Exemplar>> = Vec::new();
            if !dp.exemplars.is_empty() {
                ex_by_bucket = vec![Vec::new(); n + 1];
                for e in &dp.exemplars {
                    let ex = exemplar(e, &mut self.cache);
                    let i = dp.explicit_bounds[..n]
                        .iter()
                        .position(|&b| b >= ex.value)
                        .unwrap_or(n);
                    ex_by_bucket[i].push(ex);
                }
            }
            let mut take = |i: usize| {
                ex_by_bucket
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default()
            };
            let mut cumulative: u64 = 0;
            for (i, (bound, count)) in dp.explicit_bounds.iter().zip(&dp.bucket_counts).enumerate()
            {
                cumulative = cumulative.saturating_add(*count);
                le.clear();
                naming::write_float(&mut le, *bound);
                encode_labels(&base, &bucket_name, Some(("le", &le)), &mut self.scratch);
                self.set
                    .add_sample(&self.scratch, val(cumulative as f64), take(i));
            }
            let inf = take(n);
            self.sample(
                &base,
                &bucket_name,
                Some(("le", "+Inf")),
                val(dp.count as f64),
                inf,
            );
            latest = latest.max(Some(ts));
        }
        latest
    }

    fn exponentials(
        &mut self,
        name: &str,
        points: &[otlp::ExponentialHistogramDataPoint],
        ctx: &Context,
    ) -> Option<i64> {
        let mut latest = None;
        for dp in points {
            if dp.scale < histogram::MIN_SCHEMA {
                self.drop(DropReason::UnsupportedScale, 1);
                continue;
            }
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let Ok(h) = histogram::to_native(dp, ts, is_stale(dp.flags)) else {
                self.drop(DropReason::UnsupportedScale, 1);
                continue;
            };
            let exemplars = dp
                .exemplars
                .iter()
                .map(|e| exemplar(e, &mut self.cache))
                .collect();
            encode_labels(&base, name, None, &mut self.scratch);
            self.set.add_histogram(&self.scratch, h, exemplars);
            latest = latest.max(Some(ts));
        }
        latest
    }

    fn summaries(&mut self, name: &str, points: &[SummaryDataPoint], ctx: &Context) -> Option<i64> {
        let mut latest = None;
        let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
        let mut q = String::new();
        for dp in points {
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let stale = is_stale(dp.flags);
            let val = |v: f64| Sample {
                value: if stale { stale_nan() } else { v },
                timestamp: ts,
            };
            self.sample(&base, &sum_name, None, val(dp.sum), Vec::new());
            self.sample(&base, &count_name, None, val(dp.count as f64), Vec::new());
            for qv in &dp.quantile_values {
                q.clear();
                naming::write_float(&mut q, qv.quantile);
                self.sample(
                    &base,
                    name,
                    Some(("quantile", &q)),
                    val(qv.value),
                    Vec::new(),
                );
            }
            latest = latest.max(Some(ts));
        }
        latest
    }

    /// `target_info` = 1 with `job`, `instance` and the non-identifying resource attributes,
    /// when the resource has any and job or instance exists.
    fn target_info(
        &mut self,
        resource: &[KeyValue],
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
        self.sample(&base, &name, None, sample, Vec::new());
    }
}
