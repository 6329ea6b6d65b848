//! OTLP/JSON -> OTLP protobuf, at the edge (ARCHITECTURE.md rule 1). Follows the OTLP JSON mapping:
//! lowerCamelCase keys (snake_case accepted too, as the Collector does), hex trace/span ids,
//! 64-bit integers as strings or numbers, enums as integers, unknown fields ignored.

use crate::pipeline::payload::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;

/// Converts snake_case object keys to lowerCamelCase, recursively. OTLP JSON has no
/// user-controlled object keys (attributes are `{key, value}` lists), so this is safe.
fn camelize(v: &mut Value, depth: usize) -> Result<(), String> {
    if depth > 128 {
        return Err("JSON nested too deeply".into());
    }
    match v {
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('_')) {
                let old = std::mem::take(map);
                for (k, val) in old {
                    let key = if k.contains('_') { to_camel(&k) } else { k };
                    map.insert(key, val);
                }
            }
            for val in map.values_mut() {
                camelize(val, depth + 1)?;
            }
        }
        Value::Array(a) => {
            for val in a {
                camelize(val, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Converts an OTLP/JSON request body to the encoded protobuf request.
pub fn json_to_protobuf(signal: Signal, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("invalid OTLP/JSON: the body must be a JSON object".into());
    }
    camelize(&mut v, 0)?;
    let err = |e: serde_json::Error| format!("invalid OTLP/JSON {} request: {e}", signal);
    Ok(match signal {
        Signal::Traces => serde_json::from_value::<ExportTraceServiceRequest>(v)
            .map_err(err)?
            .encode_to_vec(),
        Signal::Metrics => serde_json::from_value::<ExportMetricsServiceRequest>(v)
            .map_err(err)?
            .encode_to_vec(),
        Signal::Logs => serde_json::from_value::<ExportLogsServiceRequest>(v)
            .map_err(err)?
            .encode_to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_and_snake_case_are_equivalent() {
        let camel = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
        let snake = br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"api"}}]},
            "scope_spans":[{"scope":{"name":"s"},"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "name":"GET /","kind":2,"start_time_unix_nano":1544712660000000000,"end_time_unix_nano":"1544712661000000000",
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
    fn errors_name_the_problem() {
        assert!(
            json_to_protobuf(Signal::Logs, b"{not json")
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(
            json_to_protobuf(Signal::Logs, b"[1]")
                .unwrap_err()
                .contains("JSON object")
        );
        let e = json_to_protobuf(
            Signal::Traces,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("invalid OTLP/JSON"), "{e}");
    }
}
