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
use labels::{Context, NAME};
use naming::NameKind;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp, AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint, metric::Data,
};
use series::SeriesSet;
pub use series::{encode_snappy, split_requests};
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

/// The result of translating one OTLP request.
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

/// Translates every resource/scope/metric of a request.
pub fn translate(req: &ExportMetricsServiceRequest, s: &Settings) -> Translation {
    let mut t = Translator {
        s,
        set: SeriesSet::with_capacity(64),
        metadata: Vec::new(),
        metadata_seen: HashMap::new(),
        dropped: HashMap::new(),
        points: 0,
    };
    for rm in &req.resource_metrics {
        let resource: &[KeyValue] = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let job_instance = labels::job_instance(resource);
        let mut fill = Vec::new();
        if s.resource_to_telemetry {
            fill = labels::attributes_to_labels(resource, &[]);
        }
        for e in &s.external_labels {
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
            t.target_info(resource, &job_instance, ts);
        }
    }
    let mut dropped: Vec<(DropReason, u64)> = t.dropped.into_iter().collect();
    dropped.sort();
    Translation {
        series: t.set.finish(),
        metadata: t.metadata,
        dropped,
        points: t.points,
    }
}

fn scope_overwrite(job_instance: &[Label], scope: Option<&InstrumentationScope>) -> Vec<Label> {
    let mut v = job_instance.to_vec();
    if let Some(sc) = scope.filter(|sc| !sc.name.is_empty()) {
        v.push(Label {
            name: labels::SCOPE_NAME.into(),
            value: sc.name.clone(),
        });
        if !sc.version.is_empty() {
            v.push(Label {
                name: labels::SCOPE_VERSION.into(),
                value: sc.version.clone(),
            });
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

/// `name` plus the extra label (`le`, `quantile`) inserted into a sorted base set.
fn series_labels(base: &[Label], name: &str, extra: Option<(&str, String)>) -> Vec<Label> {
    let mut v = Vec::with_capacity(base.len() + 2);
    v.extend_from_slice(base);
    labels::insert_sorted(&mut v, NAME, name.to_string());
    if let Some((n, val)) = extra {
        labels::insert_sorted(&mut v, n, val);
    }
    v
}

/// Exemplars as remote-write exemplars: `trace_id` / `span_id` (lowercase hex, when set)
/// plus filtered attributes while the labels stay within Prometheus' 128-rune limit.
pub fn exemplar(e: &otlp::Exemplar) -> Exemplar {
    use otlp::exemplar::Value;
    let mut labels = Vec::with_capacity(2);
    let mut runes = 0usize;
    if !e.trace_id.is_empty() && e.trace_id.iter().any(|&b| b != 0) {
        let v = hex::encode(&e.trace_id);
        runes += "trace_id".len() + v.len();
        labels.push(Label {
            name: "trace_id".into(),
            value: v,
        });
    }
    if !e.span_id.is_empty() && e.span_id.iter().any(|&b| b != 0) {
        let v = hex::encode(&e.span_id);
        runes += "span_id".len() + v.len();
        labels.push(Label {
            name: "span_id".into(),
            value: v,
        });
    }
    for l in labels::attributes_to_labels(&e.filtered_attributes, &[]) {
        if labels.iter().any(|x| x.name == l.name) {
            continue;
        }
        let n = l.name.chars().count() + l.value.chars().count();
        if runes + n > EXEMPLAR_MAX_LABEL_RUNES {
            continue;
        }
        runes += n;
        labels.push(l);
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

    fn add_metadata(&mut self, family: &str, ty: MetricType, m: &Metric) {
        if !self.s.send_metadata || self.metadata_seen.contains_key(family) {
            return;
        }
        self.metadata_seen.insert(family.to_string(), ());
        self.metadata.push(MetricMetadata {
            r#type: ty as i32,
            metric_family_name: family.to_string(),
            help: m.description.clone(),
            unit: naming::unit_name(&m.unit),
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
        match m.data.as_ref()? {
            Data::Gauge(g) => {
                let name = self.name(m, NameKind::Gauge, g.data_points.len())?;
                self.add_metadata(&name, MetricType::Gauge, m);
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
                self.add_metadata(&name, ty, m);
                self.numbers(&name, &sum.data_points, ctx, sum.is_monotonic)
            }
            Data::Histogram(h) => {
                if !self.cumulative(h.aggregation_temporality, h.data_points.len()) {
                    return None;
                }
                let name = self.name(m, NameKind::Other, h.data_points.len())?;
                self.add_metadata(&name, MetricType::Histogram, m);
                self.histograms(&name, &h.data_points, ctx)
            }
            Data::ExponentialHistogram(h) => {
                if !self.cumulative(h.aggregation_temporality, h.data_points.len()) {
                    return None;
                }
                let name = self.name(m, NameKind::Other, h.data_points.len())?;
                self.add_metadata(&name, MetricType::Histogram, m);
                self.exponentials(&name, &h.data_points, ctx)
            }
            Data::Summary(sm) => {
                let name = self.name(m, NameKind::Other, sm.data_points.len())?;
                self.add_metadata(&name, MetricType::Summary, m);
                self.summaries(&name, &sm.data_points, ctx)
            }
        }
    }

    /// Common checks of a point: returns (base labels, timestamp ms) or counts a drop.
    fn point(
        &mut self,
        attrs: &[KeyValue],
        time_ns: u64,
        ctx: &Context,
    ) -> Option<(Vec<Label>, i64)> {
        if time_ns == 0 {
            self.drop(DropReason::ZeroTimestamp, 1);
            return None;
        }
        self.points += 1;
        let base = labels::apply_context(labels::attributes_to_labels(attrs, &[]), ctx);
        Some((base, to_millis(time_ns)))
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
            let Some((mut base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let value = if is_stale(dp.flags) {
                stale_nan()
            } else {
                number_value(dp)
            };
            labels::insert_sorted(&mut base, NAME, name.to_string());
            let exemplars = if counter {
                dp.exemplars.iter().map(exemplar).collect()
            } else {
                Vec::new()
            };
            self.set.add_sample(
                base,
                Sample {
                    value,
                    timestamp: ts,
                },
                exemplars,
            );
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
        for dp in points {
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let stale = is_stale(dp.flags);
            let val = |v: f64| if stale { stale_nan() } else { v };
            if let Some(sum) = dp.sum {
                self.set.add_sample(
                    series_labels(&base, &sum_name, None),
                    Sample {
                        value: val(sum),
                        timestamp: ts,
                    },
                    Vec::new(),
                );
            }
            self.set.add_sample(
                series_labels(&base, &count_name, None),
                Sample {
                    value: val(dp.count as f64),
                    timestamp: ts,
                },
                Vec::new(),
            );
            let n = dp.explicit_bounds.len().min(dp.bucket_counts.len());
            // Exemplars go to the first bucket whose bound is >= the value, else +Inf.
            let mut ex_by_bucket: Vec<Vec<Exemplar>> = vec![Vec::new(); n + 1];
            for e in &dp.exemplars {
                let ex = exemplar(e);
                let i = dp.explicit_bounds[..n]
                    .iter()
                    .position(|&b| b >= ex.value)
                    .unwrap_or(n);
                ex_by_bucket[i].push(ex);
            }
            let mut cumulative: u64 = 0;
            let buckets = dp.explicit_bounds.iter().zip(&dp.bucket_counts);
            for ((bound, count), exemplars) in buckets.zip(ex_by_bucket.iter_mut()) {
                cumulative = cumulative.saturating_add(*count);
                self.set.add_sample(
                    series_labels(
                        &base,
                        &bucket_name,
                        Some(("le", naming::format_float(*bound))),
                    ),
                    Sample {
                        value: val(cumulative as f64),
                        timestamp: ts,
                    },
                    std::mem::take(exemplars),
                );
            }
            self.set.add_sample(
                series_labels(&base, &bucket_name, Some(("le", "+Inf".to_string()))),
                Sample {
                    value: val(dp.count as f64),
                    timestamp: ts,
                },
                std::mem::take(&mut ex_by_bucket[n]),
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
            let exemplars = dp.exemplars.iter().map(exemplar).collect();
            self.set
                .add_histogram(series_labels(&base, name, None), h, exemplars);
            latest = latest.max(Some(ts));
        }
        latest
    }

    fn summaries(&mut self, name: &str, points: &[SummaryDataPoint], ctx: &Context) -> Option<i64> {
        let mut latest = None;
        let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
        for dp in points {
            let Some((base, ts)) = self.point(&dp.attributes, dp.time_unix_nano, ctx) else {
                continue;
            };
            let stale = is_stale(dp.flags);
            let val = |v: f64| if stale { stale_nan() } else { v };
            self.set.add_sample(
                series_labels(&base, &sum_name, None),
                Sample {
                    value: val(dp.sum),
                    timestamp: ts,
                },
                Vec::new(),
            );
            self.set.add_sample(
                series_labels(&base, &count_name, None),
                Sample {
                    value: val(dp.count as f64),
                    timestamp: ts,
                },
                Vec::new(),
            );
            for q in &dp.quantile_values {
                self.set.add_sample(
                    series_labels(
                        &base,
                        name,
                        Some(("quantile", naming::format_float(q.quantile))),
                    ),
                    Sample {
                        value: val(q.value),
                        timestamp: ts,
                    },
                    Vec::new(),
                );
            }
            latest = latest.max(Some(ts));
        }
        latest
    }

    /// `target_info` = 1 with `job`, `instance` and the non-identifying resource attributes,
    /// when the resource has any and job or instance exists.
    fn target_info(&mut self, resource: &[KeyValue], job_instance: &[Label], ts: i64) {
        if job_instance.is_empty() {
            return;
        }
        let skip = [
            labels::SERVICE_NAME,
            labels::SERVICE_NAMESPACE,
            labels::SERVICE_INSTANCE_ID,
        ];
        let attrs = labels::attributes_to_labels(resource, &skip);
        if attrs.is_empty() {
            return;
        }
        let ctx = Context {
            overwrite: job_instance.to_vec(),
            fill: self.s.external_labels.clone(),
        };
        let base = labels::apply_context(attrs, &ctx);
        let name = if self.s.namespace.is_empty() {
            "target_info".to_string()
        } else {
            format!("{}_target_info", self.s.namespace)
        };
        if self.s.send_metadata && !self.metadata_seen.contains_key(&name) {
            self.metadata_seen.insert(name.clone(), ());
            self.metadata.push(MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: name.clone(),
                help: "Target metadata".into(),
                unit: String::new(),
            });
        }
        self.set.add_sample(
            series_labels(&base, &name, None),
            Sample {
                value: 1.0,
                timestamp: ts,
            },
            Vec::new(),
        );
    }
}
