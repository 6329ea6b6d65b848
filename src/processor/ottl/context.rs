//! OTTL contexts and paths: which item a statement runs on (resource, scope, span, span
//! event, metric, data point, log record), how a path like `resource.attributes["x"]` or
//! `status.code` resolves against it at compile time, and reading and writing it at run time.
//! Field names and types follow the Collector's `ottlspan`, `ottlspanevent`, `ottlmetric`,
//! `ottldatapoint` and `ottllog` contexts; enums (`kind`, `status.code`, `severity_number`,
//! `metric.type`) read and write as integers.

use super::ast::Key;
use super::value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

/// The item kind a statement or condition runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Resource,
    Scope,
    Span,
    SpanEvent,
    Metric,
    DataPoint,
    Log,
}

impl Context {
    /// The context's name in configs (`context: span`) and path prefixes (`span.name`).
    pub fn name(self) -> &'static str {
        match self {
            Context::Resource => "resource",
            Context::Scope => "scope",
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
            Context::Log => "log",
        }
    }

    /// Reads a context name.
    pub fn parse(s: &str) -> Option<Context> {
        Some(match s {
            "resource" => Context::Resource,
            "scope" | "instrumentation_scope" => Context::Scope,
            "span" => Context::Span,
            "spanevent" => Context::SpanEvent,
            "metric" => Context::Metric,
            "datapoint" => Context::DataPoint,
            "log" => Context::Log,
            _ => return None,
        })
    }

    /// Contexts whose fields this one may read through a prefix.
    fn parents(self) -> &'static [Context] {
        match self {
            Context::Resource => &[],
            Context::Scope => &[Context::Resource],
            Context::Span | Context::Metric | Context::Log => &[Context::Resource, Context::Scope],
            Context::SpanEvent => &[Context::Resource, Context::Scope, Context::Span],
            Context::DataPoint => &[Context::Resource, Context::Scope, Context::Metric],
        }
    }
}

/// A resolved field. The owner is implied by the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    ResourceAttributes,
    ResourceDroppedAttributesCount,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttributesCount,
    Span(SpanField),
    EventName,
    EventTimeUnixNano,
    EventTime,
    EventAttributes,
    EventDroppedAttributesCount,
    MetricName,
    MetricDescription,
    MetricUnit,
    MetricType,
    MetricAggregationTemporality,
    MetricIsMonotonic,
    DpAttributes,
    DpStartTimeUnixNano,
    DpTimeUnixNano,
    DpStartTime,
    DpTime,
    DpValueInt,
    DpValueDouble,
    DpCount,
    DpSum,
    DpFlags,
    LogTimeUnixNano,
    LogObservedTimeUnixNano,
    LogTime,
    LogObservedTime,
    LogSeverityNumber,
    LogSeverityText,
    LogBody,
    LogBodyString,
    LogAttributes,
    LogDroppedAttributesCount,
    LogFlags,
    LogTraceId,
    LogTraceIdString,
    LogSpanId,
    LogSpanIdString,
    LogEventName,
}

/// Span fields (also reachable from the span event context as `span.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanField {
    TraceId,
    TraceIdString,
    SpanId,
    SpanIdString,
    ParentSpanId,
    ParentSpanIdString,
    TraceState,
    Name,
    Kind,
    StartTimeUnixNano,
    EndTimeUnixNano,
    StartTime,
    EndTime,
    Attributes,
    DroppedAttributesCount,
    DroppedEventsCount,
    DroppedLinksCount,
    StatusCode,
    StatusMessage,
}

impl Field {
    /// Whether `[...]` indexes may follow the field.
    pub fn indexable(self) -> bool {
        matches!(
            self,
            Field::ResourceAttributes
                | Field::ScopeAttributes
                | Field::Span(SpanField::Attributes)
                | Field::EventAttributes
                | Field::DpAttributes
                | Field::LogAttributes
                | Field::LogBody
        )
    }
}

/// Resolves a path (its dot-separated names) in a context; the error names what is not
/// supported.
pub fn resolve(ctx: Context, fields: &[String]) -> Result<Field, String> {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    let joined = names.join(".");
    let unsupported = || {
        format!(
            "unsupported path {joined:?} in the {} context (see docs/processing.md)",
            ctx.name()
        )
    };
    let (owner, rest) = match names.split_first() {
        Some((first, rest)) => match Context::parse(first) {
            // `resource.attributes`, `span.name` from a span event, `metric.name` from a
            // data point, or the context's own prefix (`span.name` in span)
            Some(c) if c == ctx || ctx.parents().contains(&c) => (c, rest),
            _ => (ctx, &names[..]),
        },
        None => return Err(unsupported()),
    };
    field_of(owner, rest).ok_or_else(unsupported)
}

fn field_of(owner: Context, names: &[&str]) -> Option<Field> {
    use Field as F;
    use SpanField as S;
    Some(match (owner, names) {
        (Context::Resource, ["attributes"]) => F::ResourceAttributes,
        (Context::Resource, ["dropped_attributes_count"]) => F::ResourceDroppedAttributesCount,
        (Context::Scope, ["name"]) => F::ScopeName,
        (Context::Scope, ["version"]) => F::ScopeVersion,
        (Context::Scope, ["attributes"]) => F::ScopeAttributes,
        (Context::Scope, ["dropped_attributes_count"]) => F::ScopeDroppedAttributesCount,
        (Context::Span, n) => F::Span(match n {
            ["trace_id"] => S::TraceId,
            ["trace_id", "string"] => S::TraceIdString,
            ["span_id"] => S::SpanId,
            ["span_id", "string"] => S::SpanIdString,
            ["parent_span_id"] => S::ParentSpanId,
            ["parent_span_id", "string"] => S::ParentSpanIdString,
            ["trace_state"] => S::TraceState,
            ["name"] => S::Name,
            ["kind"] => S::Kind,
            ["start_time_unix_nano"] => S::StartTimeUnixNano,
            ["end_time_unix_nano"] => S::EndTimeUnixNano,
            ["start_time"] => S::StartTime,
            ["end_time"] => S::EndTime,
            ["attributes"] => S::Attributes,
            ["dropped_attributes_count"] => S::DroppedAttributesCount,
            ["dropped_events_count"] => S::DroppedEventsCount,
            ["dropped_links_count"] => S::DroppedLinksCount,
            ["status", "code"] => S::StatusCode,
            ["status", "message"] => S::StatusMessage,
            _ => return None,
        }),
        (Context::SpanEvent, ["name"]) => F::EventName,
        (Context::SpanEvent, ["time_unix_nano"]) => F::EventTimeUnixNano,
        (Context::SpanEvent, ["time"]) => F::EventTime,
        (Context::SpanEvent, ["attributes"]) => F::EventAttributes,
        (Context::SpanEvent, ["dropped_attributes_count"]) => F::EventDroppedAttributesCount,
        (Context::Metric, ["name"]) => F::MetricName,
        (Context::Metric, ["description"]) => F::MetricDescription,
        (Context::Metric, ["unit"]) => F::MetricUnit,
        (Context::Metric, ["type"]) => F::MetricType,
        (Context::Metric, ["aggregation_temporality"]) => F::MetricAggregationTemporality,
        (Context::Metric, ["is_monotonic"]) => F::MetricIsMonotonic,
        (Context::DataPoint, ["attributes"]) => F::DpAttributes,
        (Context::DataPoint, ["start_time_unix_nano"]) => F::DpStartTimeUnixNano,
        (Context::DataPoint, ["time_unix_nano"]) => F::DpTimeUnixNano,
        (Context::DataPoint, ["start_time"]) => F::DpStartTime,
        (Context::DataPoint, ["time"]) => F::DpTime,
        (Context::DataPoint, ["value_int"]) => F::DpValueInt,
        (Context::DataPoint, ["value_double"]) => F::DpValueDouble,
        (Context::DataPoint, ["count"]) => F::DpCount,
        (Context::DataPoint, ["sum"]) => F::DpSum,
        (Context::DataPoint, ["flags"]) => F::DpFlags,
        (Context::Log, ["time_unix_nano"]) => F::LogTimeUnixNano,
        (Context::Log, ["observed_time_unix_nano"]) => F::LogObservedTimeUnixNano,
        (Context::Log, ["time"]) => F::LogTime,
        (Context::Log, ["observed_time"]) => F::LogObservedTime,
        (Context::Log, ["severity_number"]) => F::LogSeverityNumber,
        (Context::Log, ["severity_text"]) => F::LogSeverityText,
        (Context::Log, ["body"]) => F::LogBody,
        (Context::Log, ["body", "string"]) => F::LogBodyString,
        (Context::Log, ["attributes"]) => F::LogAttributes,
        (Context::Log, ["dropped_attributes_count"]) => F::LogDroppedAttributesCount,
        (Context::Log, ["flags"]) => F::LogFlags,
        (Context::Log, ["trace_id"]) => F::LogTraceId,
        (Context::Log, ["trace_id", "string"]) => F::LogTraceIdString,
        (Context::Log, ["span_id"]) => F::LogSpanId,
        (Context::Log, ["span_id", "string"]) => F::LogSpanIdString,
        (Context::Log, ["event_name"]) => F::LogEventName,
        _ => return None,
    })
}

/// The item a statement runs on, with its enclosing resource and scope.
pub struct Tx<'a> {
    pub resource: &'a mut Option<Resource>,
    /// absent in the resource context
    pub scope: Option<&'a mut Option<InstrumentationScope>>,
    pub item: Item<'a>,
}

/// The innermost item.
pub enum Item<'a> {
    None,
    Span(&'a mut Span),
    /// a span and the index of one of its events
    SpanEvent(&'a mut Span, usize),
    Metric(&'a mut Metric),
    /// a metric and the index of one of its data points
    DataPoint(&'a mut Metric, usize),
    Log(&'a mut LogRecord),
}

/// A run-time failure of a path read or write (counted and handled by `error_mode`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(msg.into()))
}

/// Mutable view of one data point's common fields.
enum Dp<'a> {
    Number(&'a mut opentelemetry_proto::tonic::metrics::v1::NumberDataPoint),
    Histogram(&'a mut opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint),
    Exp(&'a mut opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint),
    Summary(&'a mut opentelemetry_proto::tonic::metrics::v1::SummaryDataPoint),
}

fn dp(m: &mut Metric, i: usize) -> Option<Dp<'_>> {
    Some(match m.data.as_mut()? {
        metric::Data::Gauge(g) => Dp::Number(g.data_points.get_mut(i)?),
        metric::Data::Sum(s) => Dp::Number(s.data_points.get_mut(i)?),
        metric::Data::Histogram(h) => Dp::Histogram(h.data_points.get_mut(i)?),
        metric::Data::ExponentialHistogram(h) => Dp::Exp(h.data_points.get_mut(i)?),
        metric::Data::Summary(s) => Dp::Summary(s.data_points.get_mut(i)?),
    })
}

macro_rules! dp_field {
    ($d:expr, $f:ident) => {
        match $d {
            Dp::Number(p) => &mut p.$f,
            Dp::Histogram(p) => &mut p.$f,
            Dp::Exp(p) => &mut p.$f,
            Dp::Summary(p) => &mut p.$f,
        }
    };
}

/// Metric type as the Collector numbers it (`METRIC_DATA_TYPE_*`).
pub fn metric_type(m: &Metric) -> i64 {
    match m.data {
        None => 0,
        Some(metric::Data::Gauge(_)) => 1,
        Some(metric::Data::Sum(_)) => 2,
        Some(metric::Data::Histogram(_)) => 3,
        Some(metric::Data::ExponentialHistogram(_)) => 4,
        Some(metric::Data::Summary(_)) => 5,
    }
}

fn temporality(m: &mut Metric) -> Option<&mut i32> {
    match m.data.as_mut()? {
        metric::Data::Sum(s) => Some(&mut s.aggregation_temporality),
        metric::Data::Histogram(h) => Some(&mut h.aggregation_temporality),
        metric::Data::ExponentialHistogram(h) => Some(&mut h.aggregation_temporality),
        _ => None,
    }
}

/// A field's storage, borrowed for reading or writing.
enum Slot<'s> {
    Attrs(&'s mut Vec<KeyValue>),
    Any(&'s mut Option<AnyValue>),
    Str(&'s mut String),
    /// string view of an `AnyValue` (`body.string`)
    AnyString(&'s mut Option<AnyValue>),
    U64(&'s mut u64),
    U32(&'s mut u32),
    I32(&'s mut i32),
    Time(&'s mut u64),
    Bool(&'s mut bool),
    Id(&'s mut Vec<u8>, usize),
    IdString(&'s mut Vec<u8>, usize),
    OptF64(&'s mut Option<f64>),
    F64(&'s mut f64),
    NumberValue(&'s mut Option<number_data_point::Value>, bool),
    /// read-only integers (metric type)
    Const(i64),
    Missing,
}

impl Tx<'_> {
    fn slot(&mut self, f: Field) -> Result<Slot<'_>, EvalError> {
        use Field as F;
        Ok(match f {
            F::ResourceAttributes => Slot::Attrs(
                &mut self
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes,
            ),
            F::ResourceDroppedAttributesCount => Slot::U32(
                &mut self
                    .resource
                    .get_or_insert_with(Default::default)
                    .dropped_attributes_count,
            ),
            F::ScopeName
            | F::ScopeVersion
            | F::ScopeAttributes
            | F::ScopeDroppedAttributesCount => {
                let Some(scope) = self.scope.as_deref_mut() else {
                    return err("no instrumentation scope in this context");
                };
                let s = scope.get_or_insert_with(Default::default);
                match f {
                    F::ScopeName => Slot::Str(&mut s.name),
                    F::ScopeVersion => Slot::Str(&mut s.version),
                    F::ScopeAttributes => Slot::Attrs(&mut s.attributes),
                    _ => Slot::U32(&mut s.dropped_attributes_count),
                }
            }
            F::Span(sf) => {
                let span: &mut Span = match &mut self.item {
                    Item::Span(s) => s,
                    Item::SpanEvent(s, _) => s,
                    _ => return err("no span in this context"),
                };
                span_slot(span, sf)
            }
            F::EventName
            | F::EventTimeUnixNano
            | F::EventTime
            | F::EventAttributes
            | F::EventDroppedAttributesCount => {
                let Item::SpanEvent(span, i) = &mut self.item else {
                    return err("no span event in this context");
                };
                let Some(e) = span.events.get_mut(*i) else {
                    return err("span event index out of range");
                };
                match f {
                    F::EventName => Slot::Str(&mut e.name),
                    F::EventTimeUnixNano => Slot::U64(&mut e.time_unix_nano),
                    F::EventTime => Slot::Time(&mut e.time_unix_nano),
                    F::EventAttributes => Slot::Attrs(&mut e.attributes),
                    _ => Slot::U32(&mut e.dropped_attributes_count),
                }
            }
            F::MetricName
            | F::MetricDescription
            | F::MetricUnit
            | F::MetricType
            | F::MetricAggregationTemporality
            | F::MetricIsMonotonic => {
                let m: &mut Metric = match &mut self.item {
                    Item::Metric(m) => m,
                    Item::DataPoint(m, _) => m,
                    _ => return err("no metric in this context"),
                };
                match f {
                    F::MetricName => Slot::Str(&mut m.name),
                    F::MetricDescription => Slot::Str(&mut m.description),
                    F::MetricUnit => Slot::Str(&mut m.unit),
                    F::MetricType => Slot::Const(metric_type(m)),
                    F::MetricAggregationTemporality => match temporality(m) {
                        Some(t) => Slot::I32(t),
                        None => Slot::Missing,
                    },
                    _ => match m.data.as_mut() {
                        Some(metric::Data::Sum(s)) => Slot::Bool(&mut s.is_monotonic),
                        _ => Slot::Missing,
                    },
                }
            }
            F::DpAttributes
            | F::DpStartTimeUnixNano
            | F::DpTimeUnixNano
            | F::DpStartTime
            | F::DpTime
            | F::DpValueInt
            | F::DpValueDouble
            | F::DpCount
            | F::DpSum
            | F::DpFlags => {
                let Item::DataPoint(m, i) = &mut self.item else {
                    return err("no data point in this context");
                };
                let Some(d) = dp(m, *i) else {
                    return err("data point index out of range");
                };
                match f {
                    F::DpAttributes => Slot::Attrs(dp_field!(d, attributes)),
                    F::DpStartTimeUnixNano => Slot::U64(dp_field!(d, start_time_unix_nano)),
                    F::DpTimeUnixNano => Slot::U64(dp_field!(d, time_unix_nano)),
                    F::DpStartTime => Slot::Time(dp_field!(d, start_time_unix_nano)),
                    F::DpTime => Slot::Time(dp_field!(d, time_unix_nano)),
                    F::DpFlags => Slot::U32(dp_field!(d, flags)),
                    F::DpValueInt | F::DpValueDouble => match d {
                        Dp::Number(p) => Slot::NumberValue(&mut p.value, f == F::DpValueInt),
                        _ => Slot::Missing,
                    },
                    F::DpCount => match d {
                        Dp::Histogram(p) => Slot::U64(&mut p.count),
                        Dp::Exp(p) => Slot::U64(&mut p.count),
                        Dp::Summary(p) => Slot::U64(&mut p.count),
                        Dp::Number(_) => Slot::Missing,
                    },
                    _ => match d {
                        Dp::Histogram(p) => Slot::OptF64(&mut p.sum),
                        Dp::Exp(p) => Slot::OptF64(&mut p.sum),
                        Dp::Summary(p) => Slot::F64(&mut p.sum),
                        Dp::Number(_) => Slot::Missing,
                    },
                }
            }
            _ => {
                let Item::Log(l) = &mut self.item else {
                    return err("no log record in this context");
                };
                match f {
                    F::LogTimeUnixNano => Slot::U64(&mut l.time_unix_nano),
                    F::LogObservedTimeUnixNano => Slot::U64(&mut l.observed_time_unix_nano),
                    F::LogTime => Slot::Time(&mut l.time_unix_nano),
                    F::LogObservedTime => Slot::Time(&mut l.observed_time_unix_nano),
                    F::LogSeverityNumber => Slot::I32(&mut l.severity_number),
                    F::LogSeverityText => Slot::Str(&mut l.severity_text),
                    F::LogBody => Slot::Any(&mut l.body),
                    F::LogBodyString => Slot::AnyString(&mut l.body),
                    F::LogAttributes => Slot::Attrs(&mut l.attributes),
                    F::LogDroppedAttributesCount => Slot::U32(&mut l.dropped_attributes_count),
                    F::LogFlags => Slot::U32(&mut l.flags),
                    F::LogTraceId => Slot::Id(&mut l.trace_id, 16),
                    F::LogTraceIdString => Slot::IdString(&mut l.trace_id, 16),
                    F::LogSpanId => Slot::Id(&mut l.span_id, 8),
                    F::LogSpanIdString => Slot::IdString(&mut l.span_id, 8),
                    _ => Slot::Str(&mut l.event_name),
                }
            }
        })
    }

    /// Reads a path; missing keys read as `nil`.
    pub fn get(&mut self, f: Field, keys: &[Key]) -> Result<Value, EvalError> {
        let slot = self.slot(f)?;
        if !keys.is_empty() {
            return Ok(match slot {
                Slot::Attrs(a) => get_in_attrs(a, keys)?,
                Slot::Any(v) => get_in_any(v.as_ref(), keys)?,
                _ => return err("this path does not take indexes"),
            });
        }
        Ok(match slot {
            Slot::Attrs(a) => Value::from_attrs(a),
            Slot::Any(v) => Value::from_any(v.as_ref()),
            Slot::Str(s) => Value::Str(s.clone()),
            Slot::AnyString(v) => match Value::from_any(v.as_ref()).to_string_like() {
                Some(s) => Value::Str(s),
                None => Value::Str(String::new()),
            },
            Slot::U64(n) => Value::Int(*n as i64),
            Slot::U32(n) => Value::Int(i64::from(*n)),
            Slot::I32(n) => Value::Int(i64::from(*n)),
            Slot::Time(n) => Value::Time(*n as i64),
            Slot::Bool(b) => Value::Bool(*b),
            Slot::Id(b, _) => Value::Bytes(b.clone()),
            Slot::IdString(b, _) => Value::Str(hex::encode(b)),
            Slot::OptF64(v) => v.map_or(Value::Nil, Value::Double),
            Slot::F64(v) => Value::Double(*v),
            Slot::NumberValue(v, want_int) => match (v, want_int) {
                (Some(number_data_point::Value::AsInt(i)), true) => Value::Int(*i),
                (Some(number_data_point::Value::AsDouble(d)), false) => Value::Double(*d),
                (_, true) => Value::Int(0),
                (_, false) => Value::Double(0.0),
            },
            Slot::Const(i) => Value::Int(i),
            Slot::Missing => Value::Nil,
        })
    }

    /// Writes a path. A type the field cannot hold is an error.
    pub fn set(&mut self, f: Field, keys: &[Key], v: Value) -> Result<(), EvalError> {
        let slot = self.slot(f)?;
        if !keys.is_empty() {
            return match slot {
                Slot::Attrs(a) => set_in_attrs(a, keys, v),
                Slot::Any(any) => set_in_any(any.get_or_insert_with(Default::default), keys, v),
                _ => err("this path does not take indexes"),
            };
        }
        let kind = v.kind();
        let wrong = |want: &str| err(format!("cannot set a {kind} where a {want} is expected"));
        match (slot, v) {
            (Slot::Attrs(a), Value::Map(m)) => *a = super::value::map_into_attrs(m),
            (Slot::Attrs(_), _) => return wrong("map"),
            (Slot::Any(a), v) => *a = Some(v.into_any()),
            (Slot::Str(s), Value::Str(n)) => *s = n,
            (Slot::Str(_), _) => return wrong("string"),
            (Slot::AnyString(a), Value::Str(n)) => {
                *a = Some(AnyValue {
                    value: Some(any_value::Value::StringValue(n)),
                })
            }
            (Slot::AnyString(_), _) => return wrong("string"),
            (Slot::U64(n), Value::Int(i)) => *n = i as u64,
            (Slot::U32(n), Value::Int(i)) => *n = i as u32,
            (Slot::I32(n), Value::Int(i)) => *n = i as i32,
            (Slot::U64(_) | Slot::U32(_) | Slot::I32(_), _) => return wrong("int"),
            (Slot::Time(n), Value::Time(t)) => *n = t as u64,
            (Slot::Time(_), _) => return wrong("time"),
            (Slot::Bool(b), Value::Bool(n)) => *b = n,
            (Slot::Bool(_), _) => return wrong("bool"),
            (Slot::Id(b, len), Value::Bytes(n)) if n.len() == len => *b = n,
            (Slot::Id(_, len), _) => return wrong(&format!("{len}-byte id")),
            (Slot::IdString(b, len), Value::Str(s)) => match hex::decode(&s) {
                Ok(n) if n.len() == len => *b = n,
                _ => return err(format!("{s:?} is not a {len}-byte hex id")),
            },
            (Slot::IdString(_, _), _) => return wrong("string"),
            (Slot::OptF64(d), Value::Double(n)) => *d = Some(n),
            (Slot::F64(d), Value::Double(n)) => *d = n,
            (Slot::OptF64(_) | Slot::F64(_), _) => return wrong("double"),
            (Slot::NumberValue(d, true), Value::Int(i)) => {
                *d = Some(number_data_point::Value::AsInt(i))
            }
            (Slot::NumberValue(d, false), Value::Double(n)) => {
                *d = Some(number_data_point::Value::AsDouble(n))
            }
            (Slot::NumberValue(_, int), _) => return wrong(if int { "int" } else { "double" }),
            (Slot::Const(_), _) => return err("this path is read-only"),
            (Slot::Missing, _) => return err("this metric or data point has no such field"),
        }
        Ok(())
    }
}

fn span_slot(span: &mut Span, f: SpanField) -> Slot<'_> {
    use SpanField as S;
    match f {
        S::TraceId => Slot::Id(&mut span.trace_id, 16),
        S::TraceIdString => Slot::IdString(&mut span.trace_id, 16),
        S::SpanId => Slot::Id(&mut span.span_id, 8),
        S::SpanIdString => Slot::IdString(&mut span.span_id, 8),
        S::ParentSpanId => Slot::Id(&mut span.parent_span_id, 8),
        S::ParentSpanIdString => Slot::IdString(&mut span.parent_span_id, 8),
        S::TraceState => Slot::Str(&mut span.trace_state),
        S::Name => Slot::Str(&mut span.name),
        S::Kind => Slot::I32(&mut span.kind),
        S::StartTimeUnixNano => Slot::U64(&mut span.start_time_unix_nano),
        S::EndTimeUnixNano => Slot::U64(&mut span.end_time_unix_nano),
        S::StartTime => Slot::Time(&mut span.start_time_unix_nano),
        S::EndTime => Slot::Time(&mut span.end_time_unix_nano),
        S::Attributes => Slot::Attrs(&mut span.attributes),
        S::DroppedAttributesCount => Slot::U32(&mut span.dropped_attributes_count),
        S::DroppedEventsCount => Slot::U32(&mut span.dropped_events_count),
        S::DroppedLinksCount => Slot::U32(&mut span.dropped_links_count),
        S::StatusCode => Slot::I32(&mut span.status.get_or_insert_with(Status::default).code),
        S::StatusMessage => Slot::Str(&mut span.status.get_or_insert_with(Status::default).message),
    }
}

fn get_in_attrs(attrs: &[KeyValue], keys: &[Key]) -> Result<Value, EvalError> {
    let Key::Str(k) = &keys[0] else {
        return err("a map cannot be indexed with an integer");
    };
    match attrs.iter().find(|kv| &kv.key == k) {
        None => Ok(Value::Nil),
        Some(kv) => get_in_any(kv.value.as_ref(), &keys[1..]),
    }
}

fn get_in_any(v: Option<&AnyValue>, keys: &[Key]) -> Result<Value, EvalError> {
    let Some(first) = keys.first() else {
        return Ok(Value::from_any(v));
    };
    match (v.and_then(|v| v.value.as_ref()), first) {
        (Some(any_value::Value::KvlistValue(m)), Key::Str(_)) => get_in_attrs(&m.values, keys),
        (Some(any_value::Value::ArrayValue(a)), Key::Int(i)) => {
            let Some(item) = usize::try_from(*i).ok().and_then(|i| a.values.get(i)) else {
                return err(format!("index {i} out of range"));
            };
            get_in_any(Some(item), &keys[1..])
        }
        (None, _) => Ok(Value::Nil),
        (Some(other), _) => err(format!(
            "a {} cannot be indexed with {first:?}",
            Value::from_any(Some(&AnyValue {
                value: Some(other.clone())
            }))
            .kind()
        )),
    }
}

fn set_in_attrs(attrs: &mut Vec<KeyValue>, keys: &[Key], v: Value) -> Result<(), EvalError> {
    let Key::Str(k) = &keys[0] else {
        return err("a map cannot be indexed with an integer");
    };
    let i = match attrs.iter().position(|kv| &kv.key == k) {
        Some(i) => i,
        None => {
            attrs.push(KeyValue {
                key: k.clone(),
                value: Some(AnyValue::default()),
                ..Default::default()
            });
            attrs.len() - 1
        }
    };
    set_in_any(
        attrs[i].value.get_or_insert_with(Default::default),
        &keys[1..],
        v,
    )
}

fn set_in_any(av: &mut AnyValue, keys: &[Key], v: Value) -> Result<(), EvalError> {
    let Some(first) = keys.first() else {
        *av = v.into_any();
        return Ok(());
    };
    match first {
        Key::Str(_) => {
            if av.value.is_none() {
                av.value = Some(any_value::Value::KvlistValue(Default::default()));
            }
            match &mut av.value {
                Some(any_value::Value::KvlistValue(m)) => set_in_attrs(&mut m.values, keys, v),
                _ => err("only a map can be indexed with a string"),
            }
        }
        Key::Int(i) => match &mut av.value {
            Some(any_value::Value::ArrayValue(a)) => {
                match usize::try_from(*i).ok().and_then(|i| a.values.get_mut(i)) {
                    Some(item) => set_in_any(item, &keys[1..], v),
                    None => err(format!("index {i} out of range")),
                }
            }
            _ => err("only a list can be indexed with an integer"),
        },
    }
}
