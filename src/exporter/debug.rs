//! `debug` exporter: prints one summary line per batch (signal, item count, service names)
//! to stdout, or the whole batch as OTLP/JSON with `verbosity: detailed`.

use crate::config::common::{QueueSettings, RetrySettings};
use crate::exporter::{SendFuture, SendOk, Sender};
use crate::pipeline::payload::{Payload, Signal};
use crate::translate::otlp_json;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    Basic,
    #[default]
    Normal,
    Detailed,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub verbosity: Verbosity,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
}

pub fn build(cfg: &Config, id: &str) -> Result<Arc<dyn Sender>, String> {
    Ok(Arc::new(DebugSender {
        id: id.to_string(),
        verbosity: cfg.verbosity,
    }))
}

struct DebugSender {
    id: String,
    verbosity: Verbosity,
}

fn service_name(r: &Option<Resource>, out: &mut BTreeSet<String>) {
    let name = r
        .as_ref()
        .and_then(|r| {
            r.attributes
                .iter()
                .find(|kv: &&KeyValue| kv.key == "service.name")
        })
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown_service".into());
    out.insert(name);
}

/// One human line describing a batch, e.g. `traces: 12 spans from [api, db]`, and the
/// batch as OTLP/JSON when `with_json` (only `verbosity: detailed` prints it, and a JSON copy
/// of every batch is memory the others should not spend).
pub fn summarize(
    batch: &Payload,
    with_json: bool,
) -> Result<(String, Option<String>), prost::DecodeError> {
    let mut services = BTreeSet::new();
    let json = match batch.signal {
        Signal::Traces => {
            let req = ExportTraceServiceRequest::decode(batch.bytes.clone())?;
            req.resource_spans
                .iter()
                .for_each(|r| service_name(&r.resource, &mut services));
            with_json.then(|| otlp_json::to_string(&req).ok()).flatten()
        }
        Signal::Metrics => {
            let req = ExportMetricsServiceRequest::decode(batch.bytes.clone())?;
            req.resource_metrics
                .iter()
                .for_each(|r| service_name(&r.resource, &mut services));
            with_json.then(|| otlp_json::to_string(&req).ok()).flatten()
        }
        Signal::Logs => {
            let req = ExportLogsServiceRequest::decode(batch.bytes.clone())?;
            req.resource_logs
                .iter()
                .for_each(|r| service_name(&r.resource, &mut services));
            with_json.then(|| otlp_json::to_string(&req).ok()).flatten()
        }
    };
    let list: Vec<_> = services.into_iter().collect();
    Ok((
        format!(
            "{}: {} {} from [{}]",
            batch.signal,
            batch.items,
            batch.signal.item_name(),
            list.join(", ")
        ),
        json,
    ))
}

impl Sender for DebugSender {
    fn send(&self, batch: Payload) -> SendFuture {
        let id = self.id.clone();
        let verbosity = self.verbosity;
        Box::pin(async move {
            match summarize(&batch, verbosity == Verbosity::Detailed) {
                Ok((line, json)) => {
                    if verbosity != Verbosity::Basic {
                        println!("{id} {line}");
                    }
                    if verbosity == Verbosity::Detailed
                        && let Some(j) = json
                    {
                        println!("{j}");
                    }
                }
                Err(e) => println!(
                    "{id} {}: {} items (undecodable: {e})",
                    batch.signal, batch.items
                ),
            }
            Ok(SendOk::all())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };

    #[test]
    fn detailed_json_writes_non_finite_doubles_as_protojson_strings() {
        let point = |v: f64| NumberDataPoint {
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "g".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![
                                point(f64::NAN),
                                point(f64::INFINITY),
                                point(f64::NEG_INFINITY),
                            ],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Payload::new(Signal::Metrics, req.encode_to_vec().into(), 3);
        let (line, json) = summarize(&batch, true).unwrap();
        assert!(line.starts_with("metrics: 3 "), "{line}");
        let v: serde_json::Value = serde_json::from_str(&json.unwrap()).unwrap();
        let dps = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"];
        assert_eq!(dps[0]["asDouble"], "NaN", "{dps}");
        assert_eq!(dps[1]["asDouble"], "Infinity", "{dps}");
        assert_eq!(dps[2]["asDouble"], "-Infinity", "{dps}");
    }
}
