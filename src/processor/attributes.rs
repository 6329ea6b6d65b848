//! The `attributes` processor, and the attribute actions it shares with the `resource`
//! processor ([`super::resource`]): insert, update, upsert and delete attributes, with a
//! literal `value` or `from_attribute`, as the Collector's processors do. `attributes` edits
//! span, log record and data point attributes; `resource` edits resource attributes. Both
//! work on a decoded request, once per pipeline, before fan-out (ARCHITECTURE.md rule 2):
//! [`super::chain`] runs every step of a pipeline in one decode / re-encode.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Insert,
    Update,
    Upsert,
    Delete,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttrAction {
    pub key: String,
    #[serde(default)]
    pub value: Option<serde_yaml::Value>,
    #[serde(default)]
    pub from_attribute: Option<String>,
    pub action: Action,
}

pub use super::resource::ResourceConfig;

/// `attributes` processor config.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    #[serde(default)]
    pub actions: Vec<AttrAction>,
}

pub fn validate_actions(actions: &[AttrAction]) -> Result<(), String> {
    if actions.is_empty() {
        return Err("at least one action is required".into());
    }
    for (i, a) in actions.iter().enumerate() {
        if a.key.is_empty() {
            return Err(format!("action {i}: key is required"));
        }
        match a.action {
            Action::Delete => {}
            _ => {
                if a.value.is_none() == a.from_attribute.is_none() {
                    return Err(format!(
                        "action {i} ({}): exactly one of value or from_attribute is required",
                        a.key
                    ));
                }
                if let Some(v) = &a.value {
                    yaml_to_any(v).ok_or_else(|| {
                        format!(
                            "action {i} ({}): value must be a string, number or boolean",
                            a.key
                        )
                    })?;
                }
            }
        }
    }
    Ok(())
}

fn yaml_to_any(v: &serde_yaml::Value) -> Option<AnyValue> {
    let value = match v {
        serde_yaml::Value::String(s) => any_value::Value::StringValue(s.clone()),
        serde_yaml::Value::Bool(b) => any_value::Value::BoolValue(*b),
        serde_yaml::Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        _ => return None,
    };
    Some(AnyValue { value: Some(value) })
}

/// Applies actions to one attribute list.
pub fn apply(actions: &[AttrAction], attrs: &mut Vec<KeyValue>) {
    for a in actions {
        let pos = attrs.iter().position(|kv| kv.key == a.key);
        if a.action == Action::Delete {
            attrs.retain(|kv| kv.key != a.key);
            continue;
        }
        let new_value = match (&a.value, &a.from_attribute) {
            (Some(v), _) => yaml_to_any(v),
            (None, Some(from)) => attrs
                .iter()
                .find(|kv| &kv.key == from)
                .and_then(|kv| kv.value.clone()),
            _ => None,
        };
        let Some(new_value) = new_value else { continue };
        match (a.action, pos) {
            (Action::Insert, None) | (Action::Upsert, None) => attrs.push(KeyValue {
                key: a.key.clone(),
                value: Some(new_value),
                ..Default::default()
            }),
            (Action::Update, Some(i)) | (Action::Upsert, Some(i)) => {
                attrs[i].value = Some(new_value)
            }
            _ => {}
        }
    }
}

/// Where a set of actions applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Resource,
    Records,
}

/// Applies the steps to a decoded traces request.
pub fn apply_traces(req: &mut ExportTraceServiceRequest, steps: &[(Target, &[AttrAction])]) {
    for rs in &mut req.resource_spans {
        for (t, acts) in steps {
            match t {
                Target::Resource => apply(acts, resource_attributes(&mut rs.resource)),
                Target::Records => rs
                    .scope_spans
                    .iter_mut()
                    .flat_map(|s| s.spans.iter_mut())
                    .for_each(|s| apply(acts, &mut s.attributes)),
            }
        }
    }
}

/// Applies the steps to a decoded logs request.
pub fn apply_logs(req: &mut ExportLogsServiceRequest, steps: &[(Target, &[AttrAction])]) {
    for rl in &mut req.resource_logs {
        for (t, acts) in steps {
            match t {
                Target::Resource => apply(acts, resource_attributes(&mut rl.resource)),
                Target::Records => rl
                    .scope_logs
                    .iter_mut()
                    .flat_map(|s| s.log_records.iter_mut())
                    .for_each(|r| apply(acts, &mut r.attributes)),
            }
        }
    }
}

/// Applies the steps to a decoded metrics request.
pub fn apply_metrics(req: &mut ExportMetricsServiceRequest, steps: &[(Target, &[AttrAction])]) {
    for rm in &mut req.resource_metrics {
        for (t, acts) in steps {
            match t {
                Target::Resource => apply(acts, resource_attributes(&mut rm.resource)),
                Target::Records => {
                    for m in rm
                        .scope_metrics
                        .iter_mut()
                        .flat_map(|s| s.metrics.iter_mut())
                    {
                        match &mut m.data {
                            Some(metric::Data::Gauge(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|d| apply(acts, &mut d.attributes)),
                            Some(metric::Data::Sum(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|d| apply(acts, &mut d.attributes)),
                            Some(metric::Data::Histogram(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|d| apply(acts, &mut d.attributes)),
                            Some(metric::Data::ExponentialHistogram(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|d| apply(acts, &mut d.attributes)),
                            Some(metric::Data::Summary(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|d| apply(acts, &mut d.attributes)),
                            None => {}
                        }
                    }
                }
            }
        }
    }
}

/// The attributes of `resource`, created empty when the request has no resource, so that
/// `insert` / `upsert` (of the `resource` processor) can add to it.
pub fn resource_attributes(
    resource: &mut Option<opentelemetry_proto::tonic::resource::v1::Resource>,
) -> &mut Vec<KeyValue> {
    &mut resource.get_or_insert_with(Default::default).attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_resource_is_created_for_insert() {
        let mut none = None;
        resource_attributes(&mut none).push(KeyValue {
            key: "deployment.environment".into(),
            ..Default::default()
        });
        assert_eq!(none.map(|r| r.attributes.len()), Some(1));
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn act(key: &str, action: Action, value: Option<&str>, from: Option<&str>) -> AttrAction {
        AttrAction {
            key: key.into(),
            value: value.map(|v| serde_yaml::Value::String(v.into())),
            from_attribute: from.map(String::from),
            action,
        }
    }

    fn get<'a>(attrs: &'a [KeyValue], k: &str) -> Option<&'a str> {
        attrs.iter().find(|kv| kv.key == k).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    #[test]
    fn actions_follow_collector_semantics() {
        let mut a = vec![kv("env", "dev"), kv("user", "bob")];
        apply(
            &[
                act("env", Action::Insert, Some("qa"), None), // exists: insert does nothing
                act("team", Action::Insert, Some("core"), None), // added
                act("user", Action::Update, Some("x"), None), // updated
                act("nope", Action::Update, Some("x"), None), // absent: update does nothing
                act("region", Action::Upsert, Some("eu"), None),
                act("owner", Action::Upsert, None, Some("user")),
                act("env", Action::Delete, None, None),
            ],
            &mut a,
        );
        assert_eq!(get(&a, "env"), None);
        assert_eq!(get(&a, "team"), Some("core"));
        assert_eq!(get(&a, "user"), Some("x"));
        assert_eq!(get(&a, "nope"), None);
        assert_eq!(get(&a, "region"), Some("eu"));
        assert_eq!(get(&a, "owner"), Some("x"));
    }

    #[test]
    fn validation() {
        assert!(validate_actions(&[act("k", Action::Insert, None, None)]).is_err());
        assert!(validate_actions(&[act("k", Action::Insert, Some("v"), Some("o"))]).is_err());
        assert!(validate_actions(&[act("k", Action::Delete, None, None)]).is_ok());
        assert!(validate_actions(&[]).is_err());
    }
}
