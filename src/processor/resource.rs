//! The `resource` processor: the Collector's attribute actions (insert, update, upsert,
//! delete; [`super::attributes::AttrAction`]) applied to the resource of every
//! `Resource{Spans,Metrics,Logs}` of a request. It runs in the same single decode / re-encode
//! as the pipeline's `attributes` processors ([`super::chain`]).

use super::attributes::AttrAction;
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

#[cfg(test)]
mod tests {
    use super::*;

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
