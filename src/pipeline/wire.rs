//! Validation and item counting on the protobuf wire format, without decoding into structs
//! (ARCHITECTURE.md rule 2). The walker knows the OTLP schema as a table of field kinds, checks
//! every tag, length, wire type, UTF-8 string, id length and nesting depth that prost would
//! check when decoding, and counts spans, metric data points and log records. Anything it
//! accepts decodes with prost, so one client's bad request can never poison a batch that
//! other clients' data shares downstream. Keys, varints and payloads are read with
//! [`crate::protowire`], the reader the translators use too; this module holds the schema.

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

fn kind(msg: Msg, field: u32) -> Kind {
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
        (M::AnyValue, 1) => Str,
        (M::AnyValue, 2 | 3) => Varint,
        (M::AnyValue, 4) => Fixed64,
        (M::AnyValue, 5) => Message(M::ArrayValue, false),
        (M::AnyValue, 6) => Message(M::KvList, false),
        (M::AnyValue, 7) => Bytes,
        (M::ArrayValue, 1) => Message(M::AnyValue, false),
        (M::KvList, 1) => Message(M::KeyValue, false),
        _ => Unknown,
    }
}

/// Walks one message; returns the items counted inside it. Every key is checked against the
/// schema's field kind before its payload is read, so a field of the wrong wire type is
/// reported as such even when its payload is also cut short.
fn walk(buf: &[u8], msg: Msg, depth: u32) -> Result<u64, ReadError> {
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
                let inner = walk(body, sub, depth + 1)?;
                items += inner + u64::from(counted);
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
}
