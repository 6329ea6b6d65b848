//! Stamping `test.run.id` on incoming data while runs are open. Runs once per request in the
//! router, before fan-out, so every destination (Tempo, Loki, Mimir, the run summary) sees
//! the same resource attribute. Resources that already carry `test.run.id` (set by the
//! service itself) are left alone. When no resource matches, the original bytes are kept
//! (no re-encode).

use crate::pipeline::payload::{Payload, Signal};
pub use crate::runs::matcher::{MatchIndex, OpenRun};
use crate::runs::summary::RUN_ID_KEY;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// The run a resource belongs to (see [`MatchIndex::choose`]).
fn choose<'a>(runs: &'a MatchIndex, r: &Option<Resource>) -> Option<&'a str> {
    runs.choose(r.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]))
}

fn stamp_resource(r: &mut Option<Resource>, id: &str) {
    r.get_or_insert_with(Default::default)
        .attributes
        .push(KeyValue {
            key: RUN_ID_KEY.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(id.into())),
            }),
            ..Default::default()
        });
}

/// One `Resource{Spans,Logs,Metrics}` with only its resource decoded (field 1 in all three);
/// the spans, records or points are skipped, not decoded.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceOnly {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
}

/// An `Export*ServiceRequest` (field 1 in all three) seen through [`ResourceOnly`].
#[derive(Clone, PartialEq, prost::Message)]
struct ResourcesOnly {
    #[prost(message, repeated, tag = "1")]
    items: Vec<ResourceOnly>,
}

/// Stamps matching resources. `Ok(None)`: nothing matched, use the payload as it is. Whether
/// anything matches is decided from the resources alone, so a request no open run wants costs
/// a skim of its bytes, not a full decode.
pub fn stamp(payload: &Payload, runs: &MatchIndex) -> Result<Option<Payload>, prost::DecodeError> {
    if runs.is_empty() {
        return Ok(None);
    }
    let peek = ResourcesOnly::decode(payload.bytes.clone())?;
    if !peek
        .items
        .iter()
        .any(|r| choose(runs, &r.resource).is_some())
    {
        return Ok(None);
    }
    macro_rules! each {
        ($req:ty, $field:ident) => {{
            let mut req = <$req>::decode(payload.bytes.clone())?;
            let mut changed = false;
            for r in &mut req.$field {
                if let Some(id) = choose(runs, &r.resource) {
                    let id = id.to_string();
                    stamp_resource(&mut r.resource, &id);
                    changed = true;
                }
            }
            if !changed {
                return Ok(None);
            }
            req.encode_to_vec()
        }};
    }
    let bytes = match payload.signal {
        Signal::Traces => each!(ExportTraceServiceRequest, resource_spans),
        Signal::Logs => each!(ExportLogsServiceRequest, resource_logs),
        Signal::Metrics => each!(ExportMetricsServiceRequest, resource_metrics),
    };
    Ok(Some(Payload::new(
        payload.signal,
        bytes.into(),
        payload.items,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::summary::attr;
    use opentelemetry_proto::tonic::logs::v1::ResourceLogs;

    fn res(ns: &str, extra: Option<(&str, &str)>) -> ResourceLogs {
        let mut attributes = vec![KeyValue {
            key: "service.namespace".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(ns.into())),
            }),
            ..Default::default()
        }];
        if let Some((k, v)) = extra {
            attributes.push(KeyValue {
                key: k.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.into())),
                }),
                ..Default::default()
            });
        }
        ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn stamps_by_filter_and_keeps_existing_ids() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![
                res("qa", None),
                res("dev", None),
                res("qa", Some((RUN_ID_KEY, "own"))),
            ],
        };
        let p = Payload::new(Signal::Logs, req.encode_to_vec().into(), 0);
        let runs = MatchIndex::new(vec![OpenRun {
            id: "r1".into(),
            matchers: vec![("service.namespace".into(), "qa".into())],
        }]);
        let out = stamp(&p, &runs).ok().flatten().map(|p| p.bytes);
        let got = out
            .and_then(|b| ExportLogsServiceRequest::decode(b).ok())
            .unwrap_or_default();
        let ids: Vec<Option<String>> = got
            .resource_logs
            .iter()
            .map(|r| {
                attr(
                    &r.resource.clone().unwrap_or_default().attributes,
                    RUN_ID_KEY,
                )
            })
            .collect();
        assert_eq!(ids, vec![Some("r1".into()), None, Some("own".into())]);
        let none = MatchIndex::new(vec![OpenRun {
            id: "r2".into(),
            matchers: vec![("service.namespace".into(), "x".into())],
        }]);
        assert!(matches!(stamp(&p, &none), Ok(None)));
    }
}
