//! The `resource` processor: the Collector's attribute actions (insert, update, upsert,
//! delete; [`super::attributes::AttrAction`]) applied to the resource of every
//! `Resource{Spans,Metrics,Logs}` of a request. It runs in the same single decode / re-encode
//! as the pipeline's `attributes` processors ([`super::chain`]).

use super::attributes::AttrAction;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

/// `processors: resource[/name]` config: `attributes` is the list of actions, validated like
/// the `attributes` processor's (`validate_actions`: at least one, each with a key and a value
/// or `from_attribute` where its action needs one).
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    #[serde(default)]
    pub attributes: Vec<AttrAction>,
}

/// The attributes of `resource`, created empty when the request has no resource, so that
/// `insert` / `upsert` can add to it.
pub fn resource_attributes(resource: &mut Option<Resource>) -> &mut Vec<KeyValue> {
    &mut resource.get_or_insert_with(Default::default).attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_resource_is_created_for_insert() {
        let mut none: Option<Resource> = None;
        resource_attributes(&mut none).push(KeyValue {
            key: "deployment.environment".into(),
            ..Default::default()
        });
        assert_eq!(none.map(|r| r.attributes.len()), Some(1));
    }

    #[test]
    fn config_takes_the_collector_shape() {
        let c: ResourceConfig = serde_yaml::from_str(
            "attributes:\n  - { key: env, value: qa, action: upsert }\n  - { key: tmp, action: delete }\n",
        )
        .unwrap();
        assert_eq!(c.attributes.len(), 2);
        assert!(serde_yaml::from_str::<ResourceConfig>("actions: []\n").is_err());
    }
}
