//! `deltatocumulative` processor: delta sums, histograms and exponential histograms become
//! cumulative, per stream (identity = resource attributes + scope + metric name, unit, type
//! and monotonicity + point attributes), as the Collector's deltatocumulativeprocessor does.
//! Each output point carries the running total and the start time of the stream's first
//! point. A point not newer than the stream's last one (out of order or duplicate) or starting
//! before it (overlap) is dropped; a gap (start after the last time) is accepted.
//! `max_stale` evicts streams that received nothing for that long; `max_streams` bounds the
//! streams kept: points of new streams over the cap are dropped and counted.

use crate::config::common::Dur;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;
/// Widest bucket span kept for an exponential histogram stream; wider spans are downscaled.
const MAX_EXP_BUCKETS: usize = 4096;

fn default_max_stale() -> Dur {
    Dur::secs(300)
}

fn default_max_streams() -> u64 {
    i64::MAX as u64
}

/// `deltatocumulative` config; defaults as in the Collector (`max_stale: 5m`, no stream cap).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_max_stale")]
    pub max_stale: Dur,
    #[serde(default = "default_max_streams")]
    pub max_streams: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_stale: default_max_stale(),
            max_streams: default_max_streams(),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_stale.0.is_zero() {
            return Err("max_stale must be greater than 0".into());
        }
        if self.max_streams == 0 {
            return Err("max_streams must be greater than 0".into());
        }
        Ok(())
    }
}

/// `error="..."` on dropped points.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

/// Self-metrics (the Collector's `otelcol_deltatocumulative_*` names).
#[derive(Clone, Debug, Default)]
pub struct D2cMetrics {
    pub streams_tracked: Gauge,
    pub streams_limit: Gauge,
    pub dropped: Family<ErrorLabels, Counter>,
}

impl D2cMetrics {
    /// Registers the metrics.
    pub fn register(reg: &mut Registry) -> Self {
        let m = D2cMetrics::default();
        reg.register(
            "otelcol_deltatocumulative_streams_tracked",
            "Streams tracked by deltatocumulative processors",
            m.streams_tracked.clone(),
        );
        reg.register(
            "otelcol_deltatocumulative_streams_limit",
            "Largest number of streams a deltatocumulative processor keeps",
            m.streams_limit.clone(),
        );
        reg.register(
            "otelcol_deltatocumulative_datapoints_dropped",
            "Delta points dropped by deltatocumulative, by reason (limit, out_of_order, older_start)",
            m.dropped.clone(),
        );
        m
    }
}

#[derive(Clone, Debug)]
enum Acc {
    Int(i64),
    Double(f64),
    Hist {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    },
    Exp(Box<ExpAcc>),
}

#[derive(Clone, Debug, Default)]
struct ExpAcc {
    scale: i32,
    zero_count: u64,
    zero_threshold: f64,
    pos: (i32, Vec<u64>),
    neg: (i32, Vec<u64>),
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Clone, Debug)]
struct Stream {
    start: u64,
    last: u64,
    seen: Instant,
    acc: Acc,
}

struct State {
    streams: HashMap<Vec<u8>, Stream>,
    last_sweep: Option<Instant>,
}

/// One `deltatocumulative` processor and its streams.
pub struct DeltaToCumulative {
    cfg: Config,
    state: parking_lot::Mutex<State>,
    metrics: D2cMetrics,
}

impl std::fmt::Debug for DeltaToCumulative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaToCumulative")
            .field("cfg", &self.cfg)
            .finish()
    }
}

fn sorted_attrs(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    let mut v: Vec<&KeyValue> = attrs.iter().collect();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in v {
        kv.encode_length_delimited(out).ok();
    }
    out.push(0xff);
}

fn metric_identity(
    resource: &[KeyValue],
    scope: &Option<InstrumentationScope>,
    m: &Metric,
) -> Vec<u8> {
    let mut out = Vec::new();
    sorted_attrs(&mut out, resource);
    if let Some(s) = scope {
        out.extend_from_slice(s.name.as_bytes());
        out.push(0);
        out.extend_from_slice(s.version.as_bytes());
        out.push(0);
        sorted_attrs(&mut out, &s.attributes);
    }
    out.extend_from_slice(m.name.as_bytes());
    out.push(0);
    out.extend_from_slice(m.unit.as_bytes());
    out.push(0);
    let (kind, monotonic) = match &m.data {
        Some(metric::Data::Sum(s)) => (2u8, s.is_monotonic),
        Some(metric::Data::Histogram(_)) => (3, false),
        Some(metric::Data::ExponentialHistogram(_)) => (4, false),
        _ => (0, false),
    };
    out.push(kind);
    out.push(u8::from(monotonic));
    out
}

/// Why a point was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drop {
    Limit,
    OutOfOrder,
    OlderStart,
}

impl Drop {
    fn label(self) -> &'static str {
        match self {
            Drop::Limit => "limit",
            Drop::OutOfOrder => "out_of_order",
            Drop::OlderStart => "older_start",
        }
    }
}

/// Moves a bucket run to a coarser scale (`by` halvings of resolution).
fn downscale(b: &(i32, Vec<u64>), by: u32) -> (i32, Vec<u64>) {
    if by == 0 || b.1.is_empty() {
        return b.clone();
    }
    let shift = by.min(31);
    let new_off = b.0 >> shift;
    let last = (b.0 + b.1.len() as i32 - 1) >> shift;
    let mut counts = vec![0u64; (last - new_off + 1) as usize];
    for (i, c) in b.1.iter().enumerate() {
        let idx = ((b.0 + i as i32) >> shift) - new_off;
        counts[idx as usize] += c;
    }
    (new_off, counts)
}

fn merge_buckets(a: &(i32, Vec<u64>), b: &(i32, Vec<u64>)) -> (i32, Vec<u64>) {
    if a.1.is_empty() {
        return b.clone();
    }
    if b.1.is_empty() {
        return a.clone();
    }
    let off = a.0.min(b.0);
    let end = (a.0 + a.1.len() as i32).max(b.0 + b.1.len() as i32);
    let mut counts = vec![0u64; (end - off) as usize];
    for run in [a, b] {
        for (i, c) in run.1.iter().enumerate() {
            counts[(run.0 - off) as usize + i] += c;
        }
    }
    (off, counts)
}

fn span(a: &(i32, Vec<u64>), b: &(i32, Vec<u64>)) -> usize {
    let ends = |x: &(i32, Vec<u64>)| (x.0 as i64, x.0 as i64 + x.1.len() as i64);
    let (a0, a1) = ends(a);
    let (b0, b1) = ends(b);
    let (lo, hi) = match (a.1.is_empty(), b.1.is_empty()) {
        (true, true) => return 0,
        (true, false) => (b0, b1),
        (false, true) => (a0, a1),
        (false, false) => (a0.min(b0), a1.max(b1)),
    };
    (hi - lo) as usize
}

fn opt_min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn opt_max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn opt_add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    }
}

fn buckets_of(b: &Option<Buckets>) -> (i32, Vec<u64>) {
    b.as_ref()
        .map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts.clone()))
}

impl ExpAcc {
    fn from(p: &ExponentialHistogramDataPoint) -> ExpAcc {
        let mut a = ExpAcc {
            scale: p.scale,
            zero_count: p.zero_count,
            zero_threshold: p.zero_threshold,
            pos: buckets_of(&p.positive),
            neg: buckets_of(&p.negative),
            count: p.count,
            sum: p.sum,
            min: p.min,
            max: p.max,
        };
        a.fit();
        a
    }

    /// Downscales until both bucket runs fit the bound.
    fn fit(&mut self) {
        while (self.pos.1.len() > MAX_EXP_BUCKETS || self.neg.1.len() > MAX_EXP_BUCKETS)
            && self.scale > -10
        {
            self.pos = downscale(&self.pos, 1);
            self.neg = downscale(&self.neg, 1);
            self.scale -= 1;
        }
    }

    fn add(&mut self, p: &ExponentialHistogramDataPoint) {
        let mut pp = buckets_of(&p.positive);
        let mut pn = buckets_of(&p.negative);
        let mut scale = self.scale.min(p.scale);
        self.pos = downscale(&self.pos, (self.scale - scale) as u32);
        self.neg = downscale(&self.neg, (self.scale - scale) as u32);
        pp = downscale(&pp, (p.scale - scale) as u32);
        pn = downscale(&pn, (p.scale - scale) as u32);
        while (span(&self.pos, &pp) > MAX_EXP_BUCKETS || span(&self.neg, &pn) > MAX_EXP_BUCKETS)
            && scale > -10
        {
            self.pos = downscale(&self.pos, 1);
            self.neg = downscale(&self.neg, 1);
            pp = downscale(&pp, 1);
            pn = downscale(&pn, 1);
            scale -= 1;
        }
        self.scale = scale;
        self.pos = merge_buckets(&self.pos, &pp);
        self.neg = merge_buckets(&self.neg, &pn);
        self.zero_count += p.zero_count;
        self.zero_threshold = self.zero_threshold.max(p.zero_threshold);
        self.count += p.count;
        self.sum = opt_add(self.sum, p.sum);
        self.min = opt_min(self.min, p.min);
        self.max = opt_max(self.max, p.max);
    }

    fn write(&self, p: &mut ExponentialHistogramDataPoint) {
        p.scale = self.scale;
        p.zero_count = self.zero_count;
        p.zero_threshold = self.zero_threshold;
        p.positive = Some(Buckets {
            offset: self.pos.0,
            bucket_counts: self.pos.1.clone(),
        });
        p.negative = Some(Buckets {
            offset: self.neg.0,
            bucket_counts: self.neg.1.clone(),
        });
        p.count = self.count;
        p.sum = self.sum;
        p.min = self.min;
        p.max = self.max;
    }
}

/// A delta point of one of the three kinds.
enum Point<'a> {
    Number(&'a mut NumberDataPoint),
    Hist(&'a mut HistogramDataPoint),
    Exp(&'a mut ExponentialHistogramDataPoint),
}

impl Point<'_> {
    fn times(&self) -> (u64, u64) {
        match self {
            Point::Number(p) => (p.start_time_unix_nano, p.time_unix_nano),
            Point::Hist(p) => (p.start_time_unix_nano, p.time_unix_nano),
            Point::Exp(p) => (p.start_time_unix_nano, p.time_unix_nano),
        }
    }

    fn set_start(&mut self, start: u64) {
        match self {
            Point::Number(p) => p.start_time_unix_nano = start,
            Point::Hist(p) => p.start_time_unix_nano = start,
            Point::Exp(p) => p.start_time_unix_nano = start,
        }
    }

    /// A fresh accumulator holding this point.
    fn acc(&self) -> Acc {
        match self {
            Point::Number(p) => match p.value {
                Some(number_data_point::Value::AsInt(i)) => Acc::Int(i),
                Some(number_data_point::Value::AsDouble(d)) => Acc::Double(d),
                None => Acc::Double(0.0),
            },
            Point::Hist(p) => Acc::Hist {
                bounds: p.explicit_bounds.clone(),
                counts: p.bucket_counts.clone(),
                count: p.count,
                sum: p.sum,
                min: p.min,
                max: p.max,
            },
            Point::Exp(p) => Acc::Exp(Box::new(ExpAcc::from(p))),
        }
    }

    /// Adds the point to the accumulator and writes the running total into the point; false
    /// when the point's shape does not continue the stream (then the stream restarts).
    fn accumulate(&mut self, acc: &mut Acc) -> bool {
        match (self, acc) {
            (Point::Number(p), Acc::Int(total)) => match p.value {
                Some(number_data_point::Value::AsInt(i)) => {
                    *total = total.wrapping_add(i);
                    p.value = Some(number_data_point::Value::AsInt(*total));
                    true
                }
                _ => false,
            },
            (Point::Number(p), Acc::Double(total)) => match p.value {
                Some(number_data_point::Value::AsDouble(d)) => {
                    *total += d;
                    p.value = Some(number_data_point::Value::AsDouble(*total));
                    true
                }
                _ => false,
            },
            (
                Point::Hist(p),
                Acc::Hist {
                    bounds,
                    counts,
                    count,
                    sum,
                    min,
                    max,
                },
            ) => {
                if p.explicit_bounds != *bounds || p.bucket_counts.len() != counts.len() {
                    return false;
                }
                for (c, d) in counts.iter_mut().zip(&p.bucket_counts) {
                    *c += d;
                }
                *count += p.count;
                *sum = opt_add(*sum, p.sum);
                *min = opt_min(*min, p.min);
                *max = opt_max(*max, p.max);
                p.bucket_counts.clone_from(counts);
                p.count = *count;
                p.sum = *sum;
                p.min = *min;
                p.max = *max;
                true
            }
            (Point::Exp(p), Acc::Exp(e)) => {
                e.add(p);
                e.write(p);
                true
            }
            _ => false,
        }
    }
}

impl DeltaToCumulative {
    pub fn new(cfg: Config, metrics: D2cMetrics) -> Self {
        metrics
            .streams_limit
            .set(i64::try_from(cfg.max_streams).unwrap_or(i64::MAX));
        DeltaToCumulative {
            cfg,
            state: parking_lot::Mutex::new(State {
                streams: HashMap::new(),
                last_sweep: None,
            }),
            metrics,
        }
    }

    /// Number of streams kept.
    pub fn streams(&self) -> usize {
        self.state.lock().streams.len()
    }

    fn sweep(&self, st: &mut State, now: Instant) {
        let every = self.cfg.max_stale.0.min(Duration::from_secs(1));
        if st.last_sweep.is_some_and(|t| now < t + every) {
            return;
        }
        st.last_sweep = Some(now);
        let stale = self.cfg.max_stale.0;
        st.streams
            .retain(|_, s| now.saturating_duration_since(s.seen) < stale);
    }

    /// Converts the delta metrics of a request in place; `now` drives staleness.
    pub fn process(&self, req: &mut ExportMetricsServiceRequest, now: Instant) {
        let mut st = self.state.lock();
        self.sweep(&mut st, now);
        for rm in &mut req.resource_metrics {
            let resource: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
            for sm in &mut rm.scope_metrics {
                for m in &mut sm.metrics {
                    let delta = match &m.data {
                        Some(metric::Data::Sum(s)) => s.aggregation_temporality == DELTA,
                        Some(metric::Data::Histogram(h)) => h.aggregation_temporality == DELTA,
                        Some(metric::Data::ExponentialHistogram(h)) => {
                            h.aggregation_temporality == DELTA
                        }
                        _ => false,
                    };
                    if !delta {
                        continue;
                    }
                    let base = metric_identity(resource, &sm.scope, m);
                    let mut step = |p: Point<'_>, attrs: &[KeyValue]| {
                        let mut key = base.clone();
                        sorted_attrs(&mut key, attrs);
                        let r = self.step(&mut st, key, p, now);
                        if let Err(d) = r {
                            self.metrics
                                .dropped
                                .get_or_create(&ErrorLabels {
                                    error: d.label().into(),
                                })
                                .inc();
                        }
                        r.is_ok()
                    };
                    match &mut m.data {
                        Some(metric::Data::Sum(s)) => {
                            s.aggregation_temporality = CUMULATIVE;
                            let mut keep = Vec::with_capacity(s.data_points.len());
                            for p in &mut s.data_points {
                                let attrs = std::mem::take(&mut p.attributes);
                                keep.push(step(Point::Number(p), &attrs));
                                p.attributes = attrs;
                            }
                            let mut it = keep.into_iter();
                            s.data_points.retain(|_| it.next().unwrap_or(false));
                        }
                        Some(metric::Data::Histogram(h)) => {
                            h.aggregation_temporality = CUMULATIVE;
                            let mut keep = Vec::with_capacity(h.data_points.len());
                            for p in &mut h.data_points {
                                let attrs = std::mem::take(&mut p.attributes);
                                keep.push(step(Point::Hist(p), &attrs));
                                p.attributes = attrs;
                            }
                            let mut it = keep.into_iter();
                            h.data_points.retain(|_| it.next().unwrap_or(false));
                        }
                        Some(metric::Data::ExponentialHistogram(h)) => {
                            h.aggregation_temporality = CUMULATIVE;
                            let mut keep = Vec::with_capacity(h.data_points.len());
                            for p in &mut h.data_points {
                                let attrs = std::mem::take(&mut p.attributes);
                                keep.push(step(Point::Exp(p), &attrs));
                                p.attributes = attrs;
                            }
                            let mut it = keep.into_iter();
                            h.data_points.retain(|_| it.next().unwrap_or(false));
                        }
                        _ => {}
                    }
                }
                sm.metrics
                    .retain(|m| crate::processor::ottl::walk::data_points(m) > 0);
            }
            rm.scope_metrics.retain(|s| !s.metrics.is_empty());
        }
        req.resource_metrics.retain(|r| !r.scope_metrics.is_empty());
        self.metrics.streams_tracked.set(st.streams.len() as i64);
    }

    fn step(
        &self,
        st: &mut State,
        key: Vec<u8>,
        mut p: Point<'_>,
        now: Instant,
    ) -> Result<(), Drop> {
        let (start, time) = p.times();
        match st.streams.get_mut(&key) {
            None => {
                if st.streams.len() as u64 >= self.cfg.max_streams {
                    return Err(Drop::Limit);
                }
                let start = if start == 0 { time } else { start };
                st.streams.insert(
                    key,
                    Stream {
                        start,
                        last: time,
                        seen: now,
                        acc: p.acc(),
                    },
                );
                p.set_start(start);
                Ok(())
            }
            Some(s) => {
                if time <= s.last {
                    return Err(Drop::OutOfOrder);
                }
                if start != 0 && start < s.last {
                    return Err(Drop::OlderStart);
                }
                if !p.accumulate(&mut s.acc) {
                    // a new shape (bounds, number type): the stream restarts here
                    s.acc = p.acc();
                    s.start = if start == 0 { time } else { start };
                }
                s.last = time;
                s.seen = now;
                p.set_start(s.start);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Histogram, ResourceMetrics, ScopeMetrics, Sum,
    };

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn req(m: Metric) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![m],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn sum(series: &str, start: u64, time: u64, v: i64) -> ExportMetricsServiceRequest {
        req(Metric {
            name: "requests".into(),
            data: Some(metric::Data::Sum(Sum {
                aggregation_temporality: DELTA,
                is_monotonic: true,
                data_points: vec![NumberDataPoint {
                    attributes: vec![kv("series", series)],
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    value: Some(number_data_point::Value::AsInt(v)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
    }

    fn first_sum(r: &ExportMetricsServiceRequest) -> Option<(u64, u64, i64, i32)> {
        let m = r
            .resource_metrics
            .first()?
            .scope_metrics
            .first()?
            .metrics
            .first()?;
        let Some(metric::Data::Sum(s)) = &m.data else {
            return None;
        };
        let p = s.data_points.first()?;
        let Some(number_data_point::Value::AsInt(v)) = p.value else {
            return None;
        };
        Some((
            p.start_time_unix_nano,
            p.time_unix_nano,
            v,
            s.aggregation_temporality,
        ))
    }

    fn d2c(cfg: &str) -> (DeltaToCumulative, D2cMetrics) {
        let m = D2cMetrics::default();
        (
            DeltaToCumulative::new(serde_yaml::from_str(cfg).unwrap(), m.clone()),
            m,
        )
    }

    fn dropped(m: &D2cMetrics, why: &str) -> u64 {
        m.dropped
            .get_or_create(&ErrorLabels { error: why.into() })
            .get()
    }

    #[test]
    fn sums_accumulate_per_series_from_the_first_start() {
        let (p, m) = d2c("{}");
        let t = Instant::now();
        let run = |mut r: ExportMetricsServiceRequest| {
            p.process(&mut r, t);
            first_sum(&r)
        };
        assert_eq!(run(sum("a", 100, 200, 5)), Some((100, 200, 5, CUMULATIVE)));
        assert_eq!(run(sum("b", 100, 200, 1)), Some((100, 200, 1, CUMULATIVE)));
        assert_eq!(run(sum("a", 200, 300, 7)), Some((100, 300, 12, CUMULATIVE)));
        // gap: accepted, the total goes on
        assert_eq!(run(sum("a", 400, 500, 1)), Some((100, 500, 13, CUMULATIVE)));
        // out of order and duplicate: dropped
        assert_eq!(run(sum("a", 300, 450, 9)), None);
        assert_eq!(run(sum("a", 400, 500, 1)), None);
        assert_eq!(dropped(&m, "out_of_order"), 2);
        // overlapping start: dropped
        assert_eq!(run(sum("a", 450, 600, 1)), None);
        assert_eq!(dropped(&m, "older_start"), 1);
        assert_eq!(run(sum("b", 200, 300, 2)), Some((100, 300, 3, CUMULATIVE)));
        assert_eq!(p.streams(), 2);
    }

    #[test]
    fn stale_streams_are_evicted_and_restart() {
        let (p, m) = d2c("max_stale: 10s");
        let t0 = Instant::now();
        let mut r = sum("a", 100, 200, 5);
        p.process(&mut r, t0);
        let mut r = sum("b", 100, 200, 5);
        p.process(&mut r, t0 + Duration::from_secs(8));
        assert_eq!(p.streams(), 2);
        // a stays idle for 12 s: evicted; b was seen 4 s ago: kept
        let mut r = sum("b", 200, 300, 1);
        p.process(&mut r, t0 + Duration::from_secs(12));
        assert_eq!(p.streams(), 1);
        assert_eq!(m.streams_tracked.get(), 1);
        // a comes back: a new stream with its own start
        let mut r = sum("a", 900, 1000, 2);
        p.process(&mut r, t0 + Duration::from_secs(13));
        assert_eq!(first_sum(&r), Some((900, 1000, 2, CUMULATIVE)));
    }

    #[test]
    fn the_stream_cap_holds() {
        let (p, m) = d2c("max_streams: 2");
        let t = Instant::now();
        for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut r = sum(s, 100, 200, 1);
            p.process(&mut r, t);
            assert_eq!(first_sum(&r).is_some(), i < 2, "series {s}");
        }
        assert_eq!(p.streams(), 2);
        assert_eq!(dropped(&m, "limit"), 2);
        assert_eq!(m.streams_limit.get(), 2);
        // known streams still accumulate
        let mut r = sum("a", 200, 300, 4);
        p.process(&mut r, t);
        assert_eq!(first_sum(&r), Some((100, 300, 5, CUMULATIVE)));
    }

    fn hist(start: u64, time: u64, counts: Vec<u64>, sum: f64) -> ExportMetricsServiceRequest {
        req(Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                aggregation_temporality: DELTA,
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: counts.iter().sum(),
                    sum: Some(sum),
                    bucket_counts: counts,
                    explicit_bounds: vec![0.1, 0.5, 1.0],
                    min: Some(sum / 10.0),
                    max: Some(sum),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
    }

    #[test]
    fn explicit_histograms_add_bucket_by_bucket() {
        let (p, _) = d2c("{}");
        let t = Instant::now();
        let mut r = hist(10, 20, vec![1, 2, 0, 0], 1.0);
        p.process(&mut r, t);
        let mut r = hist(20, 30, vec![0, 1, 3, 1], 4.0);
        p.process(&mut r, t);
        let m = &r.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(metric::Data::Histogram(h)) = &m.data else {
            panic!()
        };
        assert_eq!(h.aggregation_temporality, CUMULATIVE);
        let d = &h.data_points[0];
        assert_eq!(d.bucket_counts, vec![1, 3, 3, 1]);
        assert_eq!((d.count, d.sum, d.start_time_unix_nano), (8, Some(5.0), 10));
        assert_eq!((d.min, d.max), (Some(0.1), Some(4.0)));
    }

    fn exp(time: u64, scale: i32, offset: i32, counts: Vec<u64>) -> ExportMetricsServiceRequest {
        req(Metric {
            name: "rpc".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                aggregation_temporality: DELTA,
                data_points: vec![ExponentialHistogramDataPoint {
                    start_time_unix_nano: time - 10,
                    time_unix_nano: time,
                    count: counts.iter().sum(),
                    scale,
                    positive: Some(Buckets {
                        offset,
                        bucket_counts: counts,
                    }),
                    zero_count: 1,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
    }

    #[test]
    fn exponential_histograms_merge_at_the_coarser_scale() {
        let (p, _) = d2c("{}");
        let t = Instant::now();
        // scale 1, buckets 4..=7
        let mut r = exp(20, 1, 4, vec![1, 1, 1, 1]);
        p.process(&mut r, t);
        // scale 0, buckets 1..=2: the state downscales 4,5 -> 2 and 6,7 -> 3
        let mut r = exp(30, 0, 1, vec![5, 5]);
        p.process(&mut r, t);
        let m = &r.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(metric::Data::ExponentialHistogram(h)) = &m.data else {
            panic!()
        };
        let d = &h.data_points[0];
        assert_eq!(d.scale, 0);
        let pos = d.positive.as_ref().unwrap();
        assert_eq!((pos.offset, pos.bucket_counts.clone()), (1, vec![5, 7, 2]));
        assert_eq!((d.count, d.zero_count, d.start_time_unix_nano), (14, 2, 10));
    }

    #[test]
    fn cumulative_and_gauges_pass_untouched() {
        let (p, _) = d2c("{}");
        let mut r = sum("a", 100, 200, 5);
        if let Some(metric::Data::Sum(s)) =
            &mut r.resource_metrics[0].scope_metrics[0].metrics[0].data
        {
            s.aggregation_temporality = CUMULATIVE;
        }
        let before = r.clone();
        p.process(&mut r, Instant::now());
        assert_eq!(r, before);
        assert_eq!(p.streams(), 0);
    }

    #[test]
    fn downscale_maps_negative_indexes() {
        assert_eq!(downscale(&(-3, vec![1, 1, 1, 1]), 1), (-2, vec![1, 2, 1]));
    }
}
