//! Validation and item counting on the protobuf wire format, without decoding into structs
//! (ARCHITECTURE.md rule 2). The walker knows the OTLP schema as a table of field kinds, checks
//! every tag, length, wire type, UTF-8 string, id length and nesting depth that prost would
//! check when decoding, and counts spans, metric data points and log records. Anything it
//! accepts decodes with prost, so one client's bad request can never poison a batch that
//! other clients' data shares downstream. Keys, varints and payloads are read with
//! [`crate::protowire`], the reader the translators use too; this module holds the schema.
//!
//! Every request the gateway receives goes through here, so the walk is tuned: the schema
//! and the wire-type check are folded at compile time into one table indexed by the one-byte
//! field key (field numbers 1 to 15, nearly every OTLP field), and attributes (`KeyValue`,
//! `AnyValue`) are read inline. Anything off that path takes the full per-field check; the
//! tests pin both to the same answers, error for error.

use crate::pipeline::payload::Signal;
use crate::protowire::{
    Field, Fields, I32, I64, LEN, MAX_DEPTH, ReadError, VARINT, check_packed, utf8,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    TraceReq,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    MetricsReq,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExpHistogram,
    Summary,
    NumberDp,
    HistogramDp,
    ExpHistogramDp,
    Buckets,
    SummaryDp,
    Quantile,
    Exemplar,
    LogsReq,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

impl Msg {
    fn name(self) -> &'static str {
        match self {
            Msg::TraceReq => "ExportTraceServiceRequest",
            Msg::ResourceSpans => "ResourceSpans",
            Msg::ScopeSpans => "ScopeSpans",
            Msg::Span => "Span",
            Msg::Event => "Span.Event",
            Msg::Link => "Span.Link",
            Msg::Status => "Status",
            Msg::MetricsReq => "ExportMetricsServiceRequest",
            Msg::ResourceMetrics => "ResourceMetrics",
            Msg::ScopeMetrics => "ScopeMetrics",
            Msg::Metric => "Metric",
            Msg::Gauge => "Gauge",
            Msg::Sum => "Sum",
            Msg::Histogram => "Histogram",
            Msg::ExpHistogram => "ExponentialHistogram",
            Msg::Summary => "Summary",
            Msg::NumberDp => "NumberDataPoint",
            Msg::HistogramDp => "HistogramDataPoint",
            Msg::ExpHistogramDp => "ExponentialHistogramDataPoint",
            Msg::Buckets => "ExponentialHistogramDataPoint.Buckets",
            Msg::SummaryDp => "SummaryDataPoint",
            Msg::Quantile => "SummaryDataPoint.ValueAtQuantile",
            Msg::Exemplar => "Exemplar",
            Msg::LogsReq => "ExportLogsServiceRequest",
            Msg::ResourceLogs => "ResourceLogs",
            Msg::ScopeLogs => "ScopeLogs",
            Msg::LogRecord => "LogRecord",
            Msg::Resource => "Resource",
            Msg::EntityRef => "EntityRef",
            Msg::Scope => "InstrumentationScope",
            Msg::KeyValue => "KeyValue",
            Msg::AnyValue => "AnyValue",
            Msg::ArrayValue => "ArrayValue",
            Msg::KvList => "KeyValueList",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A sub-message; `true` when each occurrence is one counted item.
    Message(Msg, bool),
    Str,
    Bytes,
    /// Bytes that must be empty or exactly this many bytes long (trace and span ids), and
    /// the id's name as `Message.field` for the error.
    Id(u8, &'static str),
    Varint,
    Fixed64,
    Fixed32,
    /// repeated scalar: packed (LEN) or unpacked with this element wire type
    Packed(u8),
    Unknown,
}

const fn kind(msg: Msg, field: u32) -> Kind {
    use Kind::*;
    use Msg as M;
    match (msg, field) {
        (M::TraceReq, 1) => Message(M::ResourceSpans, false),
        (M::MetricsReq, 1) => Message(M::ResourceMetrics, false),
        (M::LogsReq, 1) => Message(M::ResourceLogs, false),
        (M::ResourceSpans | M::ResourceMetrics | M::ResourceLogs, 1) => Message(M::Resource, false),
        (M::ResourceSpans, 2) => Message(M::ScopeSpans, false),
        (M::ResourceMetrics, 2) => Message(M::ScopeMetrics, false),
        (M::ResourceLogs, 2) => Message(M::ScopeLogs, false),
        (M::ResourceSpans | M::ResourceMetrics | M::ResourceLogs, 3) => Str,
        (M::ScopeSpans | M::ScopeMetrics | M::ScopeLogs, 1) => Message(M::Scope, false),
        (M::ScopeSpans, 2) => Message(M::Span, true),
        (M::ScopeMetrics, 2) => Message(M::Metric, false),
        (M::ScopeLogs, 2) => Message(M::LogRecord, true),
        (M::ScopeSpans | M::ScopeMetrics | M::ScopeLogs, 3) => Str,
        // trace
        (M::Span, 1) => Id(16, "Span.trace_id"),
        (M::Span, 2) => Id(8, "Span.span_id"),
        (M::Span, 3) => Str,
        (M::Span, 4) => Id(8, "Span.parent_span_id"),
        (M::Span, 5) => Str,
        (M::Span, 6 | 10 | 12 | 14) => Varint,
        (M::Span, 7 | 8) => Fixed64,
        (M::Span, 9) => Message(M::KeyValue, false),
        (M::Span, 11) => Message(M::Event, false),
        (M::Span, 13) => Message(M::Link, false),
        (M::Span, 15) => Message(M::Status, false),
        (M::Span, 16) => Fixed32,
        (M::Event, 1) => Fixed64,
        (M::Event, 2) => Str,
        (M::Event, 3) => Message(M::KeyValue, false),
        (M::Event, 4) => Varint,
        (M::Link, 1) => Id(16, "Span.Link.trace_id"),
        (M::Link, 2) => Id(8, "Span.Link.span_id"),
        (M::Link, 3) => Str,
        (M::Link, 4) => Message(M::KeyValue, false),
        (M::Link, 5) => Varint,
        (M::Link, 6) => Fixed32,
        (M::Status, 2) => Str,
        (M::Status, 3) => Varint,
        // metrics
        (M::Metric, 1..=3) => Str,
        (M::Metric, 5) => Message(M::Gauge, false),
        (M::Metric, 7) => Message(M::Sum, false),
        (M::Metric, 9) => Message(M::Histogram, false),
        (M::Metric, 10) => Message(M::ExpHistogram, false),
        (M::Metric, 11) => Message(M::Summary, false),
        (M::Metric, 12) => Message(M::KeyValue, false),
        (M::Gauge, 1) => Message(M::NumberDp, true),
        (M::Sum, 1) => Message(M::NumberDp, true),
        (M::Sum, 2 | 3) => Varint,
        (M::Histogram, 1) => Message(M::HistogramDp, true),
        (M::Histogram, 2) => Varint,
        (M::ExpHistogram, 1) => Message(M::ExpHistogramDp, true),
        (M::ExpHistogram, 2) => Varint,
        (M::Summary, 1) => Message(M::SummaryDp, true),
        (M::NumberDp, 7) => Message(M::KeyValue, false),
        (M::NumberDp, 2 | 3 | 4 | 6) => Fixed64,
        (M::NumberDp, 5) => Message(M::Exemplar, false),
        (M::NumberDp, 8) => Varint,
        (M::HistogramDp, 9) => Message(M::KeyValue, false),
        (M::HistogramDp, 2 | 3 | 4 | 5 | 11 | 12) => Fixed64,
        (M::HistogramDp, 6 | 7) => Packed(I64),
        (M::HistogramDp, 8) => Message(M::Exemplar, false),
        (M::HistogramDp, 10) => Varint,
        (M::ExpHistogramDp, 1) => Message(M::KeyValue, false),
        (M::ExpHistogramDp, 2 | 3 | 4 | 5 | 7 | 12 | 13 | 14) => Fixed64,
        (M::ExpHistogramDp, 6 | 10) => Varint,
        (M::ExpHistogramDp, 8 | 9) => Message(M::Buckets, false),
        (M::ExpHistogramDp, 11) => Message(M::Exemplar, false),
        (M::Buckets, 1) => Varint,
        (M::Buckets, 2) => Packed(VARINT),
        (M::SummaryDp, 7) => Message(M::KeyValue, false),
        (M::SummaryDp, 2..=5) => Fixed64,
        (M::SummaryDp, 6) => Message(M::Quantile, false),
        (M::SummaryDp, 8) => Varint,
        (M::Quantile, 1 | 2) => Fixed64,
        (M::Exemplar, 7) => Message(M::KeyValue, false),
        (M::Exemplar, 2 | 3 | 6) => Fixed64,
        (M::Exemplar, 4) => Id(8, "Exemplar.span_id"),
        (M::Exemplar, 5) => Id(16, "Exemplar.trace_id"),
        // logs
        (M::LogRecord, 1 | 11) => Fixed64,
        (M::LogRecord, 2 | 7) => Varint,
        (M::LogRecord, 3 | 12) => Str,
        (M::LogRecord, 5) => Message(M::AnyValue, false),
        (M::LogRecord, 6) => Message(M::KeyValue, false),
        (M::LogRecord, 8) => Fixed32,
        (M::LogRecord, 9) => Id(16, "LogRecord.trace_id"),
        (M::LogRecord, 10) => Id(8, "LogRecord.span_id"),
        // common
        (M::Resource, 1) => Message(M::KeyValue, false),
        (M::Resource, 2) => Varint,
        (M::Resource, 3) => Message(M::EntityRef, false),
        (M::EntityRef, 1..=4) => Str,
        (M::Scope, 1 | 2) => Str,
        (M::Scope, 3) => Message(M::KeyValue, false),
        (M::Scope, 4) => Varint,
        (M::KeyValue, 1) => Str,
        (M::KeyValue, 2) => Message(M::AnyValue, false),
        // key_strindex (int32): an index into a profiles dictionary
        (M::KeyValue, 3) => Varint,
        (M::AnyValue, 1) => Str,
        (M::AnyValue, 2 | 3) => Varint,
        (M::AnyValue, 4) => Fixed64,
        (M::AnyValue, 5) => Message(M::ArrayValue, false),
        (M::AnyValue, 6) => Message(M::KvList, false),
        (M::AnyValue, 7) => Bytes,
        // string_value_strindex (int32), the last case of the `value` oneof
        (M::AnyValue, 8) => Varint,
        (M::ArrayValue, 1) => Message(M::AnyValue, false),
        (M::KvList, 1) => Message(M::KeyValue, false),
        _ => Unknown,
    }
}

/// Every message of the schema, in declaration order: `ALL_MSGS[m as usize] == m`, which
/// [`build_ops`] asserts at compile time. A message missing at the end would only lose its
/// fast path: [`walk_fields`] reads it field by field with [`slow_field`].
const ALL_MSGS: [Msg; 34] = [
    Msg::TraceReq,
    Msg::ResourceSpans,
    Msg::ScopeSpans,
    Msg::Span,
    Msg::Event,
    Msg::Link,
    Msg::Status,
    Msg::MetricsReq,
    Msg::ResourceMetrics,
    Msg::ScopeMetrics,
    Msg::Metric,
    Msg::Gauge,
    Msg::Sum,
    Msg::Histogram,
    Msg::ExpHistogram,
    Msg::Summary,
    Msg::NumberDp,
    Msg::HistogramDp,
    Msg::ExpHistogramDp,
    Msg::Buckets,
    Msg::SummaryDp,
    Msg::Quantile,
    Msg::Exemplar,
    Msg::LogsReq,
    Msg::ResourceLogs,
    Msg::ScopeLogs,
    Msg::LogRecord,
    Msg::Resource,
    Msg::EntityRef,
    Msg::Scope,
    Msg::KeyValue,
    Msg::AnyValue,
    Msg::ArrayValue,
    Msg::KvList,
];

/// What [`walk`] does for a one-byte key (field numbers 1 to 15 with a wire type), folded from
/// [`kind`] and the wire-type check at compile time into [`OPS`]. Only keys whose wire type fits
/// the field (or unknown fields of a skippable wire type) get a fast op; everything else is
/// [`Op::Slow`], which runs the full per-field checks and so reports exactly what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Field number 0, a wire type that does not fit the field, a group or wire types 4, 6, 7:
    /// read the field with [`slow_field`].
    Slow,
    /// A varint to skip (a known varint field or an unknown one).
    Varint,
    /// 8 bytes to skip.
    Fixed64,
    /// 4 bytes to skip.
    Fixed32,
    /// A length-delimited payload to skip (`bytes`, or an unknown field).
    Skip,
    /// A `string`: the payload must be UTF-8.
    Str,
    /// A trace or span id of this length (or empty).
    Id(u8),
    /// A packed repeated `fixed64` / `double`.
    PackedI64,
    /// A packed repeated varint.
    PackedVarint,
    /// A sub-message; `true` when each occurrence is one counted item.
    Sub(Msg, bool),
}

/// [`Op`] for field `field` of `msg` read with wire type `wt`: the same decision as the
/// wire-type check in [`slow_field`], made once at compile time.
const fn op_for(msg: Msg, field: u32, wt: u8) -> Op {
    let k = kind(msg, field);
    let want = match k {
        Kind::Message(..) | Kind::Str | Kind::Bytes | Kind::Id(..) => LEN,
        Kind::Varint => VARINT,
        Kind::Fixed64 => I64,
        Kind::Fixed32 => I32,
        Kind::Packed(elem) if wt == elem => elem,
        Kind::Packed(_) => LEN,
        Kind::Unknown => wt,
    };
    if wt != want {
        return Op::Slow;
    }
    match wt {
        VARINT => Op::Varint,
        I64 => Op::Fixed64,
        I32 => Op::Fixed32,
        LEN => match k {
            Kind::Message(sub, counted) => Op::Sub(sub, counted),
            Kind::Str => Op::Str,
            Kind::Id(want, _) => Op::Id(want),
            Kind::Packed(I64) => Op::PackedI64,
            Kind::Packed(VARINT) => Op::PackedVarint,
            Kind::Bytes | Kind::Unknown | Kind::Packed(_) => Op::Skip,
            Kind::Varint | Kind::Fixed64 | Kind::Fixed32 => Op::Slow,
        },
        // groups and the undefined wire types
        _ => Op::Slow,
    }
}

/// `OPS[msg as usize][key]`: the [`Op`] for each one-byte key (below 0x80) of each message.
static OPS: [[Op; 128]; ALL_MSGS.len()] = build_ops();

const fn build_ops() -> [[Op; 128]; ALL_MSGS.len()] {
    let mut t = [[Op::Slow; 128]; ALL_MSGS.len()];
    let mut m = 0;
    while m < ALL_MSGS.len() {
        assert!(
            ALL_MSGS[m] as usize == m,
            "ALL_MSGS out of declaration order"
        );
        // keys 0 to 7 carry field number 0 and stay Slow (FieldZero)
        let mut key = 8;
        while key < 128 {
            t[m][key] = op_for(ALL_MSGS[m], (key >> 3) as u32, (key & 7) as u8);
            key += 1;
        }
        m += 1;
    }
    t
}

/// Walks one message; returns the items counted inside it. Every key is checked against the
/// schema's field kind before its payload is read, so a field of the wrong wire type is
/// reported as such even when its payload is also cut short.
///
/// One-byte keys (nearly every OTLP field) take one lookup in [`OPS`], which holds the
/// wire-type check and the field's kind together; every other key, and every key the table
/// sends to [`Op::Slow`], goes through [`slow_field`], the full per-field check. `KeyValue`
/// and `AnyValue`, most of the messages of a request, have inline readers for their usual
/// keys ([`walk_key_value`], [`walk_any_value`]) that hand anything else to the table.
fn walk(buf: &[u8], msg: Msg, depth: u32) -> Result<u64, ReadError> {
    match msg {
        Msg::KeyValue => walk_key_value(buf, depth),
        Msg::AnyValue => walk_any_value(buf, depth),
        _ if depth > MAX_DEPTH => Err(ReadError::TooDeep),
        _ => walk_fields(Fields::new(buf, msg.name()), msg, depth),
    }
}

/// The loop of [`walk`], from `f`'s position on (`f` reads `msg`, at nesting depth `depth`).
fn walk_fields(mut f: Fields<'_>, msg: Msg, depth: u32) -> Result<u64, ReadError> {
    let ops = OPS.get(msg as usize).unwrap_or(&[Op::Slow; 128]);
    let mut items = 0u64;
    while let Some(key) = f.peek_key() {
        let op = ops.get(usize::from(key)).copied().unwrap_or(Op::Slow);
        match op {
            Op::Varint => {
                f.after_key_varint()?;
            }
            Op::Fixed64 => {
                f.after_key_fixed64()?;
            }
            Op::Fixed32 => {
                f.after_key_fixed32()?;
            }
            Op::Skip => {
                f.after_key_len()?;
            }
            Op::Str => {
                f.after_key_str(u32::from(key >> 3))?;
            }
            Op::Id(want) => {
                let body = f.after_key_len()?;
                if !body.is_empty() && body.len() != usize::from(want) {
                    return Err(id_length(msg, u32::from(key >> 3), want, body.len()));
                }
            }
            Op::PackedI64 => check_packed(f.after_key_len()?, I64, msg.name())?,
            Op::PackedVarint => check_packed(f.after_key_len()?, VARINT, msg.name())?,
            Op::Sub(Msg::KeyValue, false) => {
                items += walk_key_value(f.after_key_len()?, depth + 1)?;
            }
            Op::Sub(Msg::AnyValue, false) => {
                items += walk_any_value(f.after_key_len()?, depth + 1)?;
            }
            Op::Sub(sub, counted) => {
                let body = f.after_key_len()?;
                items += walk(body, sub, depth + 1)? + u64::from(counted);
            }
            Op::Slow => items += slow_field(&mut f, msg, depth)?,
        }
    }
    Ok(items)
}

/// The one-byte key of field `field` (1 to 15) with wire type `wt`.
const fn key(field: u8, wt: u8) -> u8 {
    (field << 3) | wt
}

/// [`walk`] for a `KeyValue` (attributes: the most frequent message of all), with its usual
/// shape read inline: `key` (field 1, string) and `value` (field 2, an `AnyValue`). Any other
/// key is left to [`walk_fields`], which goes on from there with every check.
#[inline(always)]
fn walk_key_value(buf: &[u8], depth: u32) -> Result<u64, ReadError> {
    const KEY: u8 = key(1, LEN);
    const VALUE: u8 = key(2, LEN);
    if depth > MAX_DEPTH {
        return Err(ReadError::TooDeep);
    }
    let mut f = Fields::new(buf, Msg::KeyValue.name());
    let mut items = 0;
    while let Some(k) = f.peek_key() {
        match k {
            KEY => {
                f.after_key_str(1)?;
            }
            VALUE => items += walk_any_value(f.after_key_len()?, depth + 1)?,
            _ => return Ok(items + walk_fields(f, Msg::KeyValue, depth)?),
        }
    }
    Ok(items)
}

/// [`walk`] for an `AnyValue`, its scalar cases read inline (`string_value`, `bool_value`,
/// `int_value`, `double_value`); an array, a key-value list, bytes or any other key is left
/// to [`walk_fields`].
#[inline(always)]
fn walk_any_value(buf: &[u8], depth: u32) -> Result<u64, ReadError> {
    const STRING: u8 = key(1, LEN);
    const BOOL: u8 = key(2, VARINT);
    const INT: u8 = key(3, VARINT);
    const DOUBLE: u8 = key(4, I64);
    if depth > MAX_DEPTH {
        return Err(ReadError::TooDeep);
    }
    let mut f = Fields::new(buf, Msg::AnyValue.name());
    while let Some(k) = f.peek_key() {
        match k {
            STRING => {
                f.after_key_str(1)?;
            }
            BOOL | INT => {
                f.after_key_varint()?;
            }
            DOUBLE => {
                f.after_key_fixed64()?;
            }
            _ => return walk_fields(f, Msg::AnyValue, depth),
        }
    }
    Ok(0)
}

/// The [`ReadError::IdLength`] for id field `field` of `msg` (declared `want` bytes long),
/// found `len` bytes long.
#[cold]
#[inline(never)]
fn id_length(msg: Msg, field: u32, want: u8, len: usize) -> ReadError {
    ReadError::IdLength {
        // OPS holds Op::Id only for the fields kind() declares as ids
        id: match kind(msg, field) {
            Kind::Id(_, id) => id,
            _ => msg.name(),
        },
        want,
        got: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

/// Reads one field of `msg` (the next key must exist) with every check: the key (varint
/// length, above `u32::MAX`, field number 0), its wire type against the field's kind, the
/// payload, then the kind's own check. Returns the items counted inside it.
#[inline(never)]
fn slow_field(f: &mut Fields<'_>, msg: Msg, depth: u32) -> Result<u64, ReadError> {
    let name = msg.name();
    let Some((field, wt)) = f.next_key()? else {
        return Ok(0);
    };
    let k = kind(msg, field);
    let want = match k {
        Kind::Message(..) | Kind::Str | Kind::Bytes | Kind::Id(..) => Some(LEN),
        Kind::Varint => Some(VARINT),
        Kind::Fixed64 => Some(I64),
        Kind::Fixed32 => Some(I32),
        Kind::Packed(elem) if wt == elem => None,
        Kind::Packed(_) => Some(LEN),
        Kind::Unknown => None,
    };
    if let Some(want) = want
        && wt != want
    {
        return Err(ReadError::WireType {
            msg: name,
            field,
            got: wt,
            want,
        });
    }
    let body = match f.payload(wt)? {
        Field::Len(body) => body,
        Field::Group => return Err(ReadError::UnsupportedWireType { msg: name, got: wt }),
        Field::Varint(_) | Field::I64(_) | Field::I32(_) => return Ok(0),
    };
    match k {
        Kind::Message(sub, counted) => Ok(walk(body, sub, depth + 1)? + u64::from(counted)),
        Kind::Str if utf8(body).is_none() => Err(ReadError::Utf8 { msg: name, field }),
        Kind::Id(want, id) if !body.is_empty() && usize::from(want) != body.len() => {
            Err(ReadError::IdLength {
                id,
                want,
                got: u32::try_from(body.len()).unwrap_or(u32::MAX),
            })
        }
        Kind::Packed(elem) => check_packed(body, elem, name).map(|()| 0),
        _ => Ok(0),
    }
}

/// Validates an encoded `Export{Trace,Metrics,Logs}ServiceRequest` and counts its items
/// (spans, metric data points, log records).
pub fn validate_and_count(signal: Signal, buf: &[u8]) -> Result<u64, ReadError> {
    let root = match signal {
        Signal::Traces => Msg::TraceReq,
        Signal::Metrics => Msg::MetricsReq,
        Signal::Logs => Msg::LogsReq,
    };
    walk(buf, root, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, metric,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn span(i: u8) -> Span {
        Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            name: format!("span-{i}"),
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn traces(n: u8) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: (0..n).map(span).collect(),
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![span(99)],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_spans_and_concatenation_adds() {
        let a = traces(3);
        assert_eq!(validate_and_count(Signal::Traces, &a), Ok(4));
        let mut ab = a.clone();
        ab.extend(traces(5));
        assert_eq!(validate_and_count(Signal::Traces, &ab), Ok(10));
        assert_eq!(
            ExportTraceServiceRequest::decode(&ab[..])
                .unwrap()
                .resource_spans
                .len(),
            2
        );
        assert_eq!(validate_and_count(Signal::Traces, &[]), Ok(0));
    }

    #[test]
    fn counts_metric_points() {
        let dp = NumberDataPoint::default();
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "g".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![dp.clone(), dp.clone()],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "h".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    bucket_counts: vec![1, 2, 3],
                                    explicit_bounds: vec![1.0, 2.0],
                                    ..Default::default()
                                }],
                                aggregation_temporality: 2,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            validate_and_count(Signal::Metrics, &req.encode_to_vec()),
            Ok(3)
        );
    }

    #[test]
    fn counts_log_records() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 7],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            validate_and_count(Signal::Logs, &req.encode_to_vec()),
            Ok(7)
        );
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let good = traces(2);
        for cut in 1..good.len() {
            let r = validate_and_count(Signal::Traces, &good[..cut]);
            // every strict prefix is either an error or (at a message boundary) a smaller valid request
            if let Ok(n) = r {
                assert!(n < 3, "prefix {cut} counted {n}");
                ExportTraceServiceRequest::decode(&good[..cut])
                    .expect("accepted prefix must decode");
            }
        }
        assert!(validate_and_count(Signal::Traces, b"\xff\xff\xff").is_err());
        assert!(validate_and_count(Signal::Traces, b"not protobuf at all").is_err());
    }

    #[test]
    fn rejects_bad_utf8_and_bad_ids() {
        let mut s = span(1);
        s.trace_id = vec![1; 5];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let err = validate_and_count(Signal::Traces, &req.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("trace_id"), "{err}");
        // span name (field 5) with invalid UTF-8, hand-encoded
        let span_bytes = [0x2a, 0x02, 0xc3, 0x28];
        let mut scope = vec![0x12, span_bytes.len() as u8];
        scope.extend(span_bytes);
        let mut rs = vec![0x12, scope.len() as u8];
        rs.extend(scope);
        let mut req = vec![0x0a, rs.len() as u8];
        req.extend(rs);
        assert!(matches!(
            validate_and_count(Signal::Traces, &req),
            Err(ReadError::Utf8 { .. })
        ));
        assert!(ExportTraceServiceRequest::decode(&req[..]).is_err());
    }

    #[test]
    fn rejects_too_deep_nesting() {
        let mut v = AnyValue {
            value: Some(any_value::Value::IntValue(1)),
        };
        for _ in 0..80 {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue { values: vec![v] },
                )),
            };
        }
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(v),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(
            validate_and_count(Signal::Logs, &req.encode_to_vec()),
            Err(ReadError::TooDeep)
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // field 99 varint on the request root
        let mut buf = traces(1);
        buf.extend([0x98, 0x06, 0x01]);
        assert_eq!(validate_and_count(Signal::Traces, &buf), Ok(2));
    }

    #[test]
    fn keys_above_u32_are_refused_as_prost_does() {
        use prost::Message;
        // found by the prw fuzz target: a 5-byte key varint (field number > 2^29)
        let buf = [0xd0, 0xcf, 0xcf, 0xe8, 0x7a, 0x21];
        assert!(validate_and_count(Signal::Metrics, &buf).is_err());
        assert!(
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(
                &buf[..]
            )
            .is_err()
        );
    }

    /// The walker as it was before the one-byte-key table and the inline `KeyValue` /
    /// `AnyValue` readers: the per-field schema lookup and wire-type check on every key. The
    /// fast paths must answer exactly as it does, error for error.
    fn reference_walk(buf: &[u8], msg: Msg, depth: u32) -> Result<u64, ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        let name = msg.name();
        let mut f = Fields::new(buf, name);
        let mut items = 0u64;
        while let Some((field, wt)) = f.next_key()? {
            let k = kind(msg, field);
            let want = match k {
                Kind::Message(..) | Kind::Str | Kind::Bytes | Kind::Id(..) => Some(LEN),
                Kind::Varint => Some(VARINT),
                Kind::Fixed64 => Some(I64),
                Kind::Fixed32 => Some(I32),
                Kind::Packed(elem) if wt == elem => None,
                Kind::Packed(_) => Some(LEN),
                Kind::Unknown => None,
            };
            if let Some(want) = want
                && wt != want
            {
                return Err(ReadError::WireType {
                    msg: name,
                    field,
                    got: wt,
                    want,
                });
            }
            let body = match f.payload(wt)? {
                Field::Len(body) => body,
                Field::Group => return Err(ReadError::UnsupportedWireType { msg: name, got: wt }),
                Field::Varint(_) | Field::I64(_) | Field::I32(_) => continue,
            };
            match k {
                Kind::Message(sub, counted) => {
                    items += reference_walk(body, sub, depth + 1)? + u64::from(counted);
                }
                Kind::Str if utf8(body).is_none() => {
                    return Err(ReadError::Utf8 { msg: name, field });
                }
                Kind::Id(want, id) if !body.is_empty() && usize::from(want) != body.len() => {
                    return Err(ReadError::IdLength {
                        id,
                        want,
                        got: u32::try_from(body.len()).unwrap_or(u32::MAX),
                    });
                }
                Kind::Packed(elem) => check_packed(body, elem, name)?,
                _ => {}
            }
        }
        Ok(items)
    }

    /// `key`, then a varint length and `body`.
    fn len_field(key: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![key];
        let mut n = body.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(body);
        out
    }

    /// An `ExportTraceServiceRequest` holding one span encoded as `span`.
    fn request_with_span(span: &[u8]) -> Vec<u8> {
        len_field(0x0a, &len_field(0x12, &len_field(0x12, span)))
    }

    /// A span whose only field is one attribute encoded as `kv`.
    fn span_with_attribute(kv: &[u8]) -> Vec<u8> {
        request_with_span(&len_field(0x4a, kv))
    }

    #[test]
    fn inline_readers_agree_with_the_table() {
        // walk_key_value and walk_any_value match these keys by value: they must be the
        // keys the schema gives those meanings to.
        let kv = &OPS[Msg::KeyValue as usize];
        assert_eq!(kv[usize::from(key(1, LEN))], Op::Str);
        assert_eq!(kv[usize::from(key(2, LEN))], Op::Sub(Msg::AnyValue, false));
        let any = &OPS[Msg::AnyValue as usize];
        assert_eq!(any[usize::from(key(1, LEN))], Op::Str);
        assert_eq!(any[usize::from(key(2, VARINT))], Op::Varint);
        assert_eq!(any[usize::from(key(3, VARINT))], Op::Varint);
        assert_eq!(any[usize::from(key(4, I64))], Op::Fixed64);
        // and a few table entries against the schema by hand
        let span = &OPS[Msg::Span as usize];
        assert_eq!(span[0x0a], Op::Id(16));
        assert_eq!(span[0x12], Op::Id(8));
        assert_eq!(
            span[0x10],
            Op::Slow,
            "span_id as a varint is a wire-type error"
        );
        assert_eq!(span[0x39], Op::Fixed64);
        assert_eq!(span[0x7a], Op::Sub(Msg::Status, false));
        assert_eq!(
            OPS[Msg::ScopeSpans as usize][0x12],
            Op::Sub(Msg::Span, true)
        );
        assert_eq!(OPS[Msg::HistogramDp as usize][0x3a], Op::PackedI64);
        assert_eq!(OPS[Msg::HistogramDp as usize][0x39], Op::Fixed64);
        assert_eq!(OPS[Msg::Buckets as usize][0x12], Op::PackedVarint);
        assert!(span[..8].iter().all(|&op| op == Op::Slow), "field number 0");
        // an unknown field of a readable wire type is skipped, a group is not
        assert_eq!(kv[usize::from(key(9, LEN))], Op::Skip);
        assert_eq!(kv[usize::from(key(9, 3))], Op::Slow);
    }

    #[test]
    fn every_one_byte_key_of_every_message_answers_as_the_reference() {
        // Every (message, one-byte key) pair, followed by payloads of each wire type, cut
        // short, oversized, or not UTF-8, at depth 0 and at the nesting limit.
        let tails: [&[u8]; 10] = [
            &[],
            &[0x00],
            &[0x96, 0x01],
            &[0x80],
            &[0x01, b'a'],
            &[0x02, 0xc3, 0x28],
            &[0x08, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7],
            &[0x05, 0x0a, 0x01, b'k', 0x12, 0x00],
        ];
        let mut checked = 0;
        for msg in ALL_MSGS {
            for key in 0u8..0x80 {
                for tail in tails {
                    let mut buf = vec![key];
                    buf.extend_from_slice(tail);
                    // the same field again after a valid one, and a trailing byte
                    let mut twice = buf.clone();
                    twice.extend_from_slice(&buf);
                    twice.push(0x08);
                    for b in [&buf, &twice] {
                        for depth in [0, MAX_DEPTH] {
                            assert_eq!(
                                walk(b, msg, depth),
                                reference_walk(b, msg, depth),
                                "{msg:?} {b:02x?} at depth {depth}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, ALL_MSGS.len() * 128 * 10 * 4);
    }

    #[test]
    fn fast_paths_report_the_exact_error() {
        let t = |buf: &[u8]| validate_and_count(Signal::Traces, buf);
        // span_id (field 2) sent as a varint: a one-byte key with the wrong wire type
        assert_eq!(
            t(&request_with_span(&[0x10, 0x01])),
            Err(ReadError::WireType {
                msg: "Span",
                field: 2,
                got: VARINT,
                want: LEN
            })
        );
        // a 15-byte trace_id, a 7-byte link span_id
        assert_eq!(
            t(&request_with_span(&len_field(0x0a, &[7; 15]))),
            Err(ReadError::IdLength {
                id: "Span.trace_id",
                want: 16,
                got: 15
            })
        );
        assert_eq!(
            t(&request_with_span(&len_field(
                0x6a,
                &len_field(0x12, &[7; 7])
            ))),
            Err(ReadError::IdLength {
                id: "Span.Link.span_id",
                want: 8,
                got: 7
            })
        );
        // an empty id is allowed, and a span of ids and a name counts one
        let mut ok = len_field(0x0a, &[]);
        ok.extend(len_field(0x12, &[1; 8]));
        ok.extend(len_field(0x2a, b"GET /"));
        assert_eq!(t(&request_with_span(&ok)), Ok(1));
        // attribute key not UTF-8, attribute string value not UTF-8
        assert_eq!(
            t(&span_with_attribute(&len_field(0x0a, &[b'a', 0xff]))),
            Err(ReadError::Utf8 {
                msg: "KeyValue",
                field: 1
            })
        );
        let mut kv = len_field(0x0a, b"k");
        kv.extend(len_field(0x12, &len_field(0x0a, &[0xc3, 0x28])));
        assert_eq!(
            t(&span_with_attribute(&kv)),
            Err(ReadError::Utf8 {
                msg: "AnyValue",
                field: 1
            })
        );
        // attribute key's length runs past the KeyValue; an int value cut short
        assert_eq!(
            t(&span_with_attribute(&[0x0a, 0x05, b'a'])),
            Err(ReadError::Truncated("KeyValue"))
        );
        let mut kv = len_field(0x0a, b"k");
        kv.extend(len_field(0x12, &[0x18, 0x80]));
        assert_eq!(
            t(&span_with_attribute(&kv)),
            Err(ReadError::Truncated("AnyValue"))
        );
        // attribute key as a varint; int_value as a string; field number 0 in a KeyValue
        assert_eq!(
            t(&span_with_attribute(&[0x08, 0x01])),
            Err(ReadError::WireType {
                msg: "KeyValue",
                field: 1,
                got: VARINT,
                want: LEN
            })
        );
        let mut kv = len_field(0x0a, b"k");
        kv.extend(len_field(0x12, &len_field(0x1a, b"1")));
        assert_eq!(
            t(&span_with_attribute(&kv)),
            Err(ReadError::WireType {
                msg: "AnyValue",
                field: 3,
                got: LEN,
                want: VARINT
            })
        );
        assert_eq!(
            t(&span_with_attribute(&[0x00, 0x01])),
            Err(ReadError::FieldZero("KeyValue"))
        );
        // unknown fields inside KeyValue and AnyValue are skipped, before and after the
        // fields the inline readers know; a checked field after them is still checked
        let mut kv = vec![0x18, 0x05];
        kv.extend(len_field(0x0a, b"k"));
        let mut any = len_field(0x4a, b"future");
        any.extend([0x10, 0x01]);
        kv.extend(len_field(0x12, &any));
        kv.extend([0x18, 0x06]);
        assert_eq!(t(&span_with_attribute(&kv)), Ok(1));
        kv.extend(len_field(0x0a, &[0xff]));
        assert_eq!(
            t(&span_with_attribute(&kv)),
            Err(ReadError::Utf8 {
                msg: "KeyValue",
                field: 1
            })
        );
        // a group in place of an attribute value
        let mut kv = len_field(0x0a, b"k");
        kv.extend([0x13, 0x14]);
        assert_eq!(
            t(&span_with_attribute(&kv)),
            Err(ReadError::WireType {
                msg: "KeyValue",
                field: 2,
                got: 3,
                want: LEN
            })
        );
        // flags (field 16) has a two-byte key: fixed32 is read, a varint is refused
        assert_eq!(t(&request_with_span(&[0x85, 0x01, 1, 0, 0, 0])), Ok(1));
        assert_eq!(
            t(&request_with_span(&[0x80, 0x01, 0x01])),
            Err(ReadError::WireType {
                msg: "Span",
                field: 16,
                got: VARINT,
                want: I32
            })
        );
        // packed fixed64 of a bad length, a packed varint cut short
        let hist = |dp: &[u8]| {
            let metric = len_field(0x4a, &len_field(0x0a, dp));
            len_field(0x0a, &len_field(0x12, &len_field(0x12, &metric)))
        };
        assert_eq!(
            validate_and_count(Signal::Metrics, &hist(&len_field(0x3a, &[0; 9]))),
            Err(ReadError::PackedLength {
                msg: "HistogramDataPoint",
                len: 9
            })
        );
        assert_eq!(
            validate_and_count(Signal::Metrics, &hist(&len_field(0x3a, &[0; 16]))),
            Ok(1)
        );
    }

    #[test]
    fn nesting_limit_holds_through_attribute_values() {
        // kvlist_value inside kvlist_value ...: KeyValue and AnyValue take the inline path
        let mut kv = len_field(0x0a, b"leaf");
        // 25 levels of three messages: past MAX_DEPTH, within prost's limit of 100
        for _ in 0..25 {
            let any = len_field(0x32, &len_field(0x0a, &kv));
            kv = len_field(0x0a, b"k");
            kv.extend(len_field(0x12, &any));
        }
        let buf = span_with_attribute(&kv);
        assert_eq!(
            validate_and_count(Signal::Traces, &buf),
            Err(ReadError::TooDeep)
        );
        assert_eq!(
            reference_walk(&buf, Msg::TraceReq, 0),
            Err(ReadError::TooDeep)
        );
        assert!(ExportTraceServiceRequest::decode(&buf[..]).is_ok());
    }

    fn kv_any(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    /// Attributes of every `AnyValue` case, nested ones included.
    fn all_kinds_of_attributes() -> Vec<KeyValue> {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        vec![
            kv_any("s", any_value::Value::StringValue("é".into())),
            kv_any("b", any_value::Value::BoolValue(true)),
            kv_any("i", any_value::Value::IntValue(-300)),
            kv_any("d", any_value::Value::DoubleValue(0.5)),
            kv_any("x", any_value::Value::BytesValue(vec![0xff, 0])),
            kv_any(
                "a",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::IntValue(1)),
                    }],
                }),
            ),
            kv_any(
                "m",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv_any("n", any_value::Value::StringValue("v".into()))],
                }),
            ),
        ]
    }

    fn rich_traces() -> Vec<u8> {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{Status, span};
        let attrs = all_kinds_of_attributes();
        let s = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "a=b".into(),
            flags: 0x301,
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: attrs.clone(),
            dropped_attributes_count: 1,
            events: vec![span::Event {
                time_unix_nano: 3,
                name: "ev".into(),
                attributes: attrs[..2].to_vec(),
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                trace_state: "c=d".into(),
                attributes: attrs[2..3].to_vec(),
                dropped_attributes_count: 4,
                flags: 1,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs[..1].to_vec(),
                    dropped_attributes_count: 1,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1".into(),
                        attributes: attrs[1..2].to_vec(),
                        dropped_attributes_count: 1,
                    }),
                    spans: vec![s.clone(), span(7)],
                    schema_url: "u".into(),
                }],
                schema_url: "r".into(),
            }],
        }
        .encode_to_vec()
    }

    fn rich_metrics() -> Vec<u8> {
        use opentelemetry_proto::tonic::metrics::v1::{
            Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Sum, Summary,
            SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets,
            number_data_point, summary_data_point::ValueAtQuantile,
        };
        let attrs = all_kinds_of_attributes();
        let ex = Exemplar {
            filtered_attributes: attrs[..1].to_vec(),
            time_unix_nano: 1,
            span_id: vec![1; 8],
            trace_id: vec![2; 16],
            value: Some(exemplar::Value::AsInt(3)),
        };
        let metric = |name: &str, data| Metric {
            name: name.into(),
            description: "d".into(),
            unit: "1".into(),
            metadata: attrs[1..2].to_vec(),
            data: Some(data),
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric(
                            "sum",
                            metric::Data::Sum(Sum {
                                data_points: vec![NumberDataPoint {
                                    attributes: attrs[2..4].to_vec(),
                                    start_time_unix_nano: 1,
                                    time_unix_nano: 2,
                                    exemplars: vec![ex.clone()],
                                    flags: 1,
                                    value: Some(number_data_point::Value::AsDouble(1.5)),
                                }],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "hist",
                            metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    attributes: attrs[..1].to_vec(),
                                    count: 3,
                                    sum: Some(1.0),
                                    bucket_counts: vec![1, 2],
                                    explicit_bounds: vec![0.5],
                                    exemplars: vec![ex.clone()],
                                    min: Some(0.1),
                                    max: Some(0.9),
                                    ..Default::default()
                                }],
                                aggregation_temporality: 1,
                            }),
                        ),
                        metric(
                            "exp",
                            metric::Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint {
                                    count: 4,
                                    scale: -2,
                                    zero_count: 1,
                                    positive: Some(Buckets {
                                        offset: -1,
                                        bucket_counts: vec![300, 1],
                                    }),
                                    exemplars: vec![ex],
                                    ..Default::default()
                                }],
                                aggregation_temporality: 2,
                            }),
                        ),
                        metric(
                            "summary",
                            metric::Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint {
                                    count: 2,
                                    sum: 3.0,
                                    quantile_values: vec![ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 1.0,
                                    }],
                                    ..Default::default()
                                }],
                            }),
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn rich_logs() -> Vec<u8> {
        let attrs = all_kinds_of_attributes();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 1,
                            observed_time_unix_nano: 2,
                            severity_number: 9,
                            severity_text: "INFO".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("hello".into())),
                            }),
                            attributes: attrs[3..].to_vec(),
                            dropped_attributes_count: 1,
                            flags: 1,
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            event_name: "e".into(),
                        },
                        LogRecord::default(),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// What prost makes of `buf`: the item count, or its refusal.
    fn prost_count(signal: Signal, buf: &[u8]) -> Result<u64, prost::DecodeError> {
        Ok(match signal {
            Signal::Traces => ExportTraceServiceRequest::decode(buf)?
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum(),
            Signal::Metrics => ExportMetricsServiceRequest::decode(buf)?
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(metric::Data::Gauge(g)) => g.data_points.len(),
                    Some(metric::Data::Sum(s)) => s.data_points.len(),
                    Some(metric::Data::Histogram(h)) => h.data_points.len(),
                    Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(metric::Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64)
                .sum(),
            Signal::Logs => ExportLogsServiceRequest::decode(buf)?
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum(),
        })
    }

    #[test]
    fn damaged_requests_answer_as_the_reference_and_as_prost() {
        // Every byte of a request using every field of its signal, replaced by bytes that
        // change a wire type, a field number, a length or a UTF-8 sequence; and every prefix.
        for (signal, root, good, items) in [
            (Signal::Traces, Msg::TraceReq, rich_traces(), 2),
            (Signal::Metrics, Msg::MetricsReq, rich_metrics(), 4),
            (Signal::Logs, Msg::LogsReq, rich_logs(), 2),
        ] {
            assert_eq!(validate_and_count(signal, &good), Ok(items));
            let mut variants: Vec<Vec<u8>> =
                (0..good.len()).map(|cut| good[..cut].to_vec()).collect();
            for i in 0..good.len() {
                let b = good[i];
                for v in [
                    0x00,
                    0x80,
                    0xff,
                    0xc3,
                    b ^ 0x01,
                    b ^ 0x02,
                    b ^ 0x05,
                    b ^ 0x08,
                    b ^ 0x40,
                    b.wrapping_add(1),
                    b.wrapping_sub(1),
                ] {
                    if v != b {
                        let mut m = good.clone();
                        m[i] = v;
                        variants.push(m);
                    }
                }
            }
            let (mut accepted, mut refused) = (0, 0);
            for m in &variants {
                let got = validate_and_count(signal, m);
                assert_eq!(got, reference_walk(m, root, 0), "{signal:?} {m:02x?}");
                match (&got, prost_count(signal, m)) {
                    (Ok(n), Ok(p)) => {
                        assert_eq!(*n, p, "{signal:?} count {m:02x?}");
                        accepted += 1;
                    }
                    (Ok(_), Err(e)) => {
                        panic!("{signal:?}: accepted what prost refuses ({e}): {m:02x?}")
                    }
                    (Err(_), Err(_)) => refused += 1,
                    // stricter than prost: ids of the wrong length, and groups (prost skips
                    // an unknown group field; the walker refuses the wire type)
                    (Err(ReadError::IdLength { .. }), Ok(_))
                    | (Err(ReadError::UnsupportedWireType { got: 3, .. }), Ok(_)) => refused += 1,
                    (Err(e), Ok(_)) => {
                        panic!("{signal:?}: refused what prost accepts ({e}): {m:02x?}")
                    }
                }
            }
            assert!(
                accepted > 100 && refused > 500,
                "{signal:?}: {accepted} accepted, {refused} refused"
            );
        }
    }
}
