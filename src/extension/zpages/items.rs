//! One encoded OTLP request -> the items in it (spans, log records, metrics), each as a
//! summary (service, name, status, trace id) plus the item alone as an OTLP/JSON request
//! (its resource and scope kept), for the tap stream, recent data and `wait`. Runs only for
//! viewers, never on the data path.

use crate::pipeline::payload::{Payload, Signal};
use crate::translate::otlp_json;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use serde::Serialize;

/// The resource attribute test runs are stamped with.
pub const RUN_ATTRIBUTE: &str = "test.run.id";

/// One item as the APIs show it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `traces`, `metrics` or `logs`.
    pub signal: &'static str,
    /// Where it was seen: `receiver/<id>` or `exporter/<id>`.
    pub component: String,
    /// When Watchtower saw it (Unix time, nanoseconds).
    pub observed_time_unix_nano: u64,
    /// The resource's `service.name` (empty when absent).
    pub service: String,
    /// Span name, metric name, or log body (first 200 characters).
    pub name: String,
    /// Span status (`unset`, `ok`, `error`) or log severity text/number; empty for metrics.
    pub status: String,
    /// Hex trace id (spans and logs that carry one); empty otherwise.
    pub trace_id: String,
    /// The resource's `test.run.id` (empty when absent).
    pub run: String,
    /// The item alone as an OTLP/JSON `Export*ServiceRequest`.
    pub otlp: serde_json::Value,
}

fn str_attr(attrs: &[KeyValue], key: &str) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            any_value::Value::BoolValue(b) => b.to_string(),
            any_value::Value::DoubleValue(d) => d.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

fn resource_facts(r: &Option<Resource>) -> (String, String) {
    let attrs = r.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
    (
        str_attr(attrs, "service.name"),
        str_attr(attrs, RUN_ATTRIBUTE),
    )
}

fn body_text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    let s = match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => otlp_json::to_string(other).unwrap_or_default(),
        None => String::new(),
    };
    s.chars().take(200).collect()
}

/// Context of one decode: where and when the request was seen.
pub struct Seen<'a> {
    pub component: &'a str,
    pub observed_time_unix_nano: u64,
}

/// Decodes a payload into its items. A payload that does not decode (it was validated at
/// the receiver, so this does not happen) yields no items.
pub fn decode(p: &Payload, seen: &Seen) -> Vec<Item> {
    let base = |signal: Signal| Item {
        signal: signal.as_str(),
        component: seen.component.to_string(),
        observed_time_unix_nano: seen.observed_time_unix_nano,
        service: String::new(),
        name: String::new(),
        status: String::new(),
        trace_id: String::new(),
        run: String::new(),
        otlp: serde_json::Value::Null,
    };
    let mut out = Vec::new();
    match p.signal {
        Signal::Traces => {
            let Ok(req) = ExportTraceServiceRequest::decode(p.bytes.as_ref()) else {
                return out;
            };
            for rs in req.resource_spans {
                let (service, run) = resource_facts(&rs.resource);
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        let status = match span.status.as_ref().map(|s| s.code) {
                            Some(2) => "error",
                            Some(1) => "ok",
                            _ => "unset",
                        };
                        let mut it = base(Signal::Traces);
                        it.service = service.clone();
                        it.run = run.clone();
                        it.name = span.name.clone();
                        it.status = status.into();
                        it.trace_id = hex::encode(&span.trace_id);
                        let one = ExportTraceServiceRequest {
                            resource_spans: vec![ResourceSpans {
                                resource: rs.resource.clone(),
                                scope_spans: vec![ScopeSpans {
                                    scope: ss.scope.clone(),
                                    spans: vec![span],
                                    schema_url: ss.schema_url.clone(),
                                }],
                                schema_url: rs.schema_url.clone(),
                            }],
                        };
                        it.otlp = otlp_json::to_value(&one).unwrap_or_default();
                        out.push(it);
                    }
                }
            }
        }
        Signal::Logs => {
            let Ok(req) = ExportLogsServiceRequest::decode(p.bytes.as_ref()) else {
                return out;
            };
            for rl in req.resource_logs {
                let (service, run) = resource_facts(&rl.resource);
                for sl in rl.scope_logs {
                    for rec in sl.log_records {
                        let mut it = base(Signal::Logs);
                        it.service = service.clone();
                        it.run = run.clone();
                        it.name = body_text(&rec.body);
                        it.status = if rec.severity_text.is_empty() {
                            if rec.severity_number > 0 {
                                rec.severity_number.to_string()
                            } else {
                                String::new()
                            }
                        } else {
                            rec.severity_text.clone()
                        };
                        it.trace_id = hex::encode(&rec.trace_id);
                        let one = ExportLogsServiceRequest {
                            resource_logs: vec![ResourceLogs {
                                resource: rl.resource.clone(),
                                scope_logs: vec![ScopeLogs {
                                    scope: sl.scope.clone(),
                                    log_records: vec![rec],
                                    schema_url: sl.schema_url.clone(),
                                }],
                                schema_url: rl.schema_url.clone(),
                            }],
                        };
                        it.otlp = otlp_json::to_value(&one).unwrap_or_default();
                        out.push(it);
                    }
                }
            }
        }
        Signal::Metrics => {
            let Ok(req) = ExportMetricsServiceRequest::decode(p.bytes.as_ref()) else {
                return out;
            };
            for rm in req.resource_metrics {
                let (service, run) = resource_facts(&rm.resource);
                for sm in rm.scope_metrics {
                    for m in sm.metrics {
                        let mut it = base(Signal::Metrics);
                        it.service = service.clone();
                        it.run = run.clone();
                        it.name = m.name.clone();
                        let one = ExportMetricsServiceRequest {
                            resource_metrics: vec![ResourceMetrics {
                                resource: rm.resource.clone(),
                                scope_metrics: vec![ScopeMetrics {
                                    scope: sm.scope.clone(),
                                    metrics: vec![m],
                                    schema_url: sm.schema_url.clone(),
                                }],
                                schema_url: rm.schema_url.clone(),
                            }],
                        };
                        it.otlp = otlp_json::to_value(&one).unwrap_or_default();
                        out.push(it);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;

    #[test]
    fn item_json_writes_non_finite_doubles_as_protojson_strings() {
        let double = |v: f64| AnyValue {
            value: Some(any_value::Value::DoubleValue(v)),
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(double(f64::NAN)),
                        attributes: vec![
                            KeyValue {
                                key: "up".into(),
                                value: Some(double(f64::INFINITY)),
                                ..Default::default()
                            },
                            KeyValue {
                                key: "down".into(),
                                value: Some(double(f64::NEG_INFINITY)),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let p = Payload::new(Signal::Logs, req.encode_to_vec().into(), 1);
        let seen = Seen {
            component: "receiver/otlp",
            observed_time_unix_nano: 1,
        };
        let items = decode(&p, &seen);
        assert_eq!(items.len(), 1);
        let rec = &items[0].otlp["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["body"]["doubleValue"], "NaN", "{rec}");
        assert_eq!(
            rec["attributes"][0]["value"]["doubleValue"], "Infinity",
            "{rec}"
        );
        assert_eq!(
            rec["attributes"][1]["value"]["doubleValue"], "-Infinity",
            "{rec}"
        );
        assert_eq!(items[0].name, r#"{"doubleValue":"NaN"}"#);
    }
}
