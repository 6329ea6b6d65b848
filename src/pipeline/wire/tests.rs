use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    metric,
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
            ExportTraceServiceRequest::decode(&good[..cut]).expect("accepted prefix must decode");
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
        SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, number_data_point,
        summary_data_point::ValueAtQuantile,
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
        let mut variants: Vec<Vec<u8>> = (0..good.len()).map(|cut| good[..cut].to_vec()).collect();
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
