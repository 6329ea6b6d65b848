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
mod tests;
