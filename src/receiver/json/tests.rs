//! The OTLP/JSON value rules, one at a time, and every class of type error (each refused with
//! the JSON path of the bad value).

use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Nv;
use opentelemetry_proto::tonic::trace::v1::Span;

fn span(fields: &str) -> Result<Span, JsonError> {
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{fields}}}]}}]}}]}}"#);
    let pb = json_to_protobuf(Signal::Traces, body.as_bytes())?;
    let mut req = ExportTraceServiceRequest::decode(&pb[..]).expect("valid protobuf");
    Ok(req
        .resource_spans
        .remove(0)
        .scope_spans
        .remove(0)
        .spans
        .remove(0))
}

fn attr(value: &str) -> Result<Option<Av>, JsonError> {
    let s = span(&format!(
        r#""attributes":[{{"key":"k","value":{{{value}}}}}]"#
    ))?;
    Ok(s.attributes[0].value.clone().and_then(|v| v.value))
}

fn gauge(point: &str) -> Result<Option<Nv>, JsonError> {
    let body = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{{{point}}}]}}}}]}}]}}]}}"#
    );
    let pb = json_to_protobuf(Signal::Metrics, body.as_bytes())?;
    let req = ExportMetricsServiceRequest::decode(&pb[..]).expect("valid protobuf");
    match &req.resource_metrics[0].scope_metrics[0].metrics[0].data {
        Some(Data::Gauge(g)) => Ok(g.data_points[0].value),
        other => panic!("{other:?}"),
    }
}

/// The error's path and message, for an input that must be refused.
fn refused(r: Result<impl std::fmt::Debug, JsonError>) -> (String, String) {
    match r {
        Err(JsonError::Field { path, message, .. }) => (path, message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn camel_and_snake_case_are_equivalent() {
    let camel = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
        "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
        "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
        "attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
    let snake = br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"api"}}]},
        "scope_spans":[{"scope":{"name":"s"},"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
        "name":"GET /","kind":"SPAN_KIND_SERVER","start_time_unix_nano":1544712660000000000,"end_time_unix_nano":"1544712661000000000",
        "attributes":[{"key":"n","value":{"int_value":42}}]}]}]}]}"#;
    let a = json_to_protobuf(Signal::Traces, camel).unwrap();
    let b = json_to_protobuf(Signal::Traces, snake).unwrap();
    assert_eq!(a, b);
    let req = ExportTraceServiceRequest::decode(&a[..]).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(span.start_time_unix_nano, 1544712660000000000);
    assert_eq!(span.kind, 2);
}

#[test]
fn enums_are_names_or_numbers() {
    assert_eq!(span(r#""kind":"SPAN_KIND_CLIENT""#).unwrap().kind, 3);
    assert_eq!(span(r#""kind":4"#).unwrap().kind, 4);
    // proto3 enums are open: an unknown number is kept
    assert_eq!(span(r#""kind":77"#).unwrap().kind, 77);
    let st = span(r#""status":{"code":"STATUS_CODE_ERROR"}"#)
        .unwrap()
        .status;
    assert_eq!(st.map(|s| s.code), Some(2));
    let (path, msg) = refused(span(r#""kind":"SERVER""#));
    assert_eq!(path, "resourceSpans[0].scopeSpans[0].spans[0].kind");
    assert!(msg.contains("SPAN_KIND_SERVER"), "lists the names: {msg}");
    let (path, _) = refused(span(r#""kind":4294967296"#));
    assert!(path.ends_with(".kind"), "{path}");

    let logs = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN"},{"severityNumber":13}]}]}]}"#;
    let pb = json_to_protobuf(Signal::Logs, logs).unwrap();
    let req = ExportLogsServiceRequest::decode(&pb[..]).unwrap();
    let recs = &req.resource_logs[0].scope_logs[0].log_records;
    assert_eq!((recs[0].severity_number, recs[1].severity_number), (13, 13));

    let metrics = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,"dataPoints":[{"asInt":"3"}]}}]}]}]}"#;
    let pb = json_to_protobuf(Signal::Metrics, metrics).unwrap();
    let req = ExportMetricsServiceRequest::decode(&pb[..]).unwrap();
    match &req.resource_metrics[0].scope_metrics[0].metrics[0].data {
        Some(Data::Sum(s)) => {
            assert_eq!(s.aggregation_temporality, 2);
            assert_eq!(s.data_points[0].value, Some(Nv::AsInt(3)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn doubles_are_numbers_or_strings_bit_exact() {
    assert_eq!(
        gauge(r#""asDouble":"1.5""#).unwrap(),
        Some(Nv::AsDouble(1.5))
    );
    assert_eq!(
        gauge(r#""asDouble":"Infinity""#).unwrap(),
        Some(Nv::AsDouble(f64::INFINITY))
    );
    assert_eq!(
        gauge(r#""asDouble":"-Infinity""#).unwrap(),
        Some(Nv::AsDouble(f64::NEG_INFINITY))
    );
    match gauge(r#""asDouble":"NaN""#).unwrap() {
        Some(Nv::AsDouble(v)) => assert!(v.is_nan()),
        other => panic!("{other:?}"),
    }
    // a finite text beyond a double's range is refused, as the JSON number 1e400 is
    for text in [r#""asDouble":"1e400""#, r#""asDouble":"-1e400""#] {
        let (path, message) = refused(gauge(text));
        assert!(path.ends_with("asDouble"), "{path}");
        assert!(message.contains("out of range"), "{message}");
    }
    // a whole double of 2^63 and more, as JavaScript writes it
    assert_eq!(
        gauge(r#""asDouble":9223372036854775808"#).unwrap(),
        Some(Nv::AsDouble(9223372036854775808.0))
    );
    assert_eq!(
        gauge(r#""asDouble":123456789012345678901234567890"#).unwrap(),
        Some(Nv::AsDouble(1.2345678901234568e29))
    );
    assert_eq!(
        gauge(r#""asDouble":9.961810628981361"#).unwrap(),
        Some(Nv::AsDouble(9.961810628981361))
    );
    // shortest round-trip text, as a number and as a string, gives back the same bits
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = f64::from_bits(x);
        if !v.is_finite() {
            continue;
        }
        for text in [format!("{v:?}"), format!("{v:e}"), format!("\"{v:?}\"")] {
            match gauge(&format!(r#""asDouble":{text}"#)).unwrap() {
                Some(Nv::AsDouble(got)) => assert_eq!(got.to_bits(), v.to_bits(), "{text}"),
                other => panic!("{other:?}"),
            }
        }
    }
    for bad in [r#""inf""#, r#""nan""#, r#""1.5x""#, "true", "{}", "[1]"] {
        let (path, msg) = refused(gauge(&format!(r#""asDouble":{bad}"#)));
        assert_eq!(
            path, "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asDouble",
            "{bad}"
        );
        assert!(msg.contains("expected a double"), "{bad}: {msg}");
    }
}

#[test]
fn integers_are_numbers_or_strings_exponents_when_integral() {
    let t = |v: &str| span(&format!(r#""startTimeUnixNano":{v}"#)).map(|s| s.start_time_unix_nano);
    assert_eq!(t(r#""18446744073709551615""#).unwrap(), u64::MAX);
    assert_eq!(t("18446744073709551615").unwrap(), u64::MAX);
    assert_eq!(t("1e3").unwrap(), 1000);
    assert_eq!(t(r#""1.5e1""#).unwrap(), 15);
    assert_eq!(
        t(r#""1544712660000000001e0""#).unwrap(),
        1544712660000000001
    );
    assert_eq!(
        t(r#""15447126600000000010e-1""#).unwrap(),
        1544712660000000001
    );
    assert_eq!(t("7.0").unwrap(), 7);
    assert_eq!(t("null").unwrap(), 0);
    for bad in [
        "1.5",
        r#""1.5""#,
        "-1",
        r#""18446744073709551616""#,
        "1.8e19",
        r#""12abc""#,
        r#""""#,
        "true",
        "[]",
    ] {
        let (path, msg) = refused(t(bad));
        assert_eq!(
            path, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano",
            "{bad}"
        );
        assert!(msg.contains("a uint64"), "{bad}: {msg}");
    }
    // int64 attribute values, int32/uint32 fields
    assert_eq!(
        attr(r#""intValue":"-9223372036854775808""#).unwrap(),
        Some(Av::IntValue(i64::MIN))
    );
    let (path, _) = refused(attr(r#""intValue":"9223372036854775808""#));
    assert_eq!(
        path,
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.intValue"
    );
    assert_eq!(span(r#""flags":"257""#).unwrap().flags, 257);
    let (path, msg) = refused(span(r#""flags":4294967296"#));
    assert!(
        path.ends_with("spans[0].flags") && msg.contains("uint32"),
        "{path}: {msg}"
    );
    assert_eq!(
        span(r#""droppedAttributesCount":3"#)
            .unwrap()
            .dropped_attributes_count,
        3
    );
}

#[test]
fn ids_are_hex_and_other_bytes_base64() {
    let s = span(r#""traceId":"5B8EFFF798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"""#).unwrap();
    assert_eq!(hex::encode(&s.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex::encode(&s.span_id), "eee19b7ec3c1b174");
    assert!(s.parent_span_id.is_empty());
    // base64 of a 16-byte id is refused, not decoded as hex into garbage
    for bad in [
        r#""traceId":"W47/95gDgQPSabYzgT/GDA==""#,
        r#""traceId":"5b8efff798038103""#,
        r#""spanId":"zzzzzzzzzzzzzzzz""#,
        r#""traceId":42"#,
    ] {
        let (path, _) = refused(span(bad));
        assert!(path.ends_with("Id"), "{bad}: {path}");
    }
    for text in ["/+8=", "/+8", "_-8=", "_-8"] {
        assert_eq!(
            attr(&format!(r#""bytesValue":"{text}""#)).unwrap(),
            Some(Av::BytesValue(vec![0xff, 0xef])),
            "{text}"
        );
    }
    let (path, msg) = refused(attr(r#""bytesValue":"%%%""#));
    assert!(
        path.ends_with("value.bytesValue") && msg.contains("base64"),
        "{path}: {msg}"
    );
}

#[test]
fn null_is_the_default_and_unknown_fields_are_ignored() {
    let s = span(
        r#""name":null,"kind":null,"traceId":null,"attributes":null,"status":null,"flags":null,
           "futureField":{"deep":[1,{"x":null}]},"another":"x""#,
    )
    .unwrap();
    assert_eq!(s, Span::default());
    assert_eq!(attr(r#""stringValue":null"#).unwrap(), None);
    assert_eq!(gauge(r#""asDouble":null"#).unwrap(), None);
}

/// Every class of type error is refused, with the path of the value and what was expected.
#[test]
fn every_type_error_names_its_path() {
    let m = "resourceMetrics[0].scopeMetrics[0].metrics[0]";
    let cases: &[(Signal, &str, &str)] = &[
        (Signal::Traces, r#"{"resourceSpans":{}}"#, "resourceSpans"),
        (
            Signal::Traces,
            r#"{"resourceSpans":[[]]}"#,
            "resourceSpans[0]",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"resource":"r"}]}"#,
            "resourceSpans[0].resource",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].name",
        ),
        // a field twice, or two members of a oneof: the path is the object's, the message names the field
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","name":"b"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0]",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"stringValue":"a","intValue":1}}]}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"kvlistValue":{"values":[{"key":"n","value":{"boolValue":"true"}}]}}}]}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.kvlistValue.values[0].value.boolValue",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"links":[{"spanId":"00"}]}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"events":[{"timeUnixNano":"soon"}]}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].events[0].timeUnixNano",
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asDouble":"x"}]}}]}]}]}"#,
            &format!("{m}.gauge.dataPoints[0].asDouble"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"CUMULATIVE"}}]}]}]}"#,
            &format!("{m}.sum.aggregationTemporality"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"isMonotonic":"yes"}}]}]}]}"#,
            &format!("{m}.sum.isMonotonic"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"flags":"x"}]}}]}]}]}"#,
            &format!("{m}.gauge.dataPoints[0].flags"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"exemplars":[{"traceId":"nothex"}]}]}}]}]}]}"#,
            &format!("{m}.gauge.dataPoints[0].exemplars[0].traceId"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"bucketCounts":["1","x"]}]}}]}]}]}"#,
            &format!("{m}.histogram.dataPoints[0].bucketCounts[1]"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"explicitBounds":{}}]}}]}]}]}"#,
            &format!("{m}.histogram.dataPoints[0].explicitBounds"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"sum":"many"}]}}]}]}]}"#,
            &format!("{m}.histogram.dataPoints[0].sum"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"exponentialHistogram":{"dataPoints":[{"scale":2147483648}]}}]}]}]}"#,
            &format!("{m}.exponentialHistogram.dataPoints[0].scale"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"exponentialHistogram":{"dataPoints":[{"positive":{"offset":"1.5"}}]}}]}]}]}"#,
            &format!("{m}.exponentialHistogram.dataPoints[0].positive.offset"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"summary":{"dataPoints":[{"quantileValues":[{"quantile":"half"}]}]}}]}]}]}"#,
            &format!("{m}.summary.dataPoints[0].quantileValues[0].quantile"),
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[]},"sum":{"dataPoints":[]}}]}]}]}"#,
            m,
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].severityNumber",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"arrayValue":{"values":[{"doubleValue":"x"}]}}}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].body.arrayValue.values[0].doubleValue",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"EEE19B7EC3C1B17"}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].spanId",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"scope":{"version":1}}]}]}"#,
            "resourceLogs[0].scopeLogs[0].scope.version",
        ),
        (Signal::Logs, "[1]", "."),
    ];
    for (signal, body, want) in cases {
        match json_to_protobuf(*signal, body.as_bytes()) {
            Err(e @ JsonError::Field { .. }) => {
                let JsonError::Field { path, message, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(path, want, "{body}: {e}");
                assert!(!message.is_empty());
                assert!(e.to_string().contains(want), "{e}");
            }
            other => panic!("{body}: expected a field error, got {other:?}"),
        }
    }
    for body in [&b"{not json"[..], b"{} x", b""] {
        match json_to_protobuf(Signal::Logs, body) {
            Err(e @ JsonError::Syntax { path: None, .. }) => {
                assert!(e.to_string().starts_with("invalid JSON: "), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_number_json_cannot_hold_names_its_path() {
    let cases = [
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":1e400}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{"body":{"doubleValue":-1e400}}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[1].body.doubleValue",
        ),
    ];
    for (signal, body, want) in cases {
        match json_to_protobuf(signal, body.as_bytes()) {
            Err(e @ JsonError::Syntax { path: Some(_), .. }) => {
                let s = e.to_string();
                assert!(s.starts_with(&format!("invalid JSON at {want}: ")), "{s}");
                assert!(s.contains("out of range"), "{s}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let mut v = String::from(r#"{"stringValue":"x"}"#);
    for _ in 0..200 {
        v = format!(r#"{{"arrayValue":{{"values":[{v}]}}}}"#);
    }
    let body =
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{v}}}]}}]}}]}}"#);
    let e = json_to_protobuf(Signal::Logs, body.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
}

#[test]
fn integral_parser_is_exact() {
    use scalars::parse_integral;
    assert_eq!(parse_integral("1e3"), Ok(1000));
    assert_eq!(parse_integral("-2.50e1"), Ok(-25));
    assert_eq!(parse_integral("0.000e-5"), Ok(0));
    assert_eq!(parse_integral(".5e1"), Ok(5));
    assert_eq!(
        parse_integral("18446744073709551615.000"),
        Ok(u64::MAX as i128)
    );
    assert!(parse_integral("1.05e1").is_err());
    assert!(parse_integral("1e40").is_err());
    assert!(parse_integral("1e").is_err());
    assert!(parse_integral("e5").is_err());
    assert!(parse_integral("-").is_err());
    assert!(parse_integral("1e-99999999999999999999").is_err());
}
