//! Which open run a resource belongs to, precomputed. The open runs' `match` filters are
//! turned into an inverted index (attribute key -> value -> runs that ask for it) whenever the
//! set of open runs changes, so choosing a run for a resource walks the resource's own
//! attributes once: the cost does not grow with the number of keys in the filters, and with
//! many open runs it grows only with the runs whose filters the resource actually hits.

use crate::runs::summary::RUN_ID_KEY;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use std::borrow::Cow;
use std::collections::HashMap;

/// An open run as stamping sees it.
#[derive(Clone, Debug)]
pub struct OpenRun {
    pub id: String,
    /// all must equal the resource's attribute values; empty = everything
    pub matchers: Vec<(String, String)>,
}

/// The open runs' filters as an inverted index. Runs are held in priority order (most
/// recently started first: it wins when filters overlap).
#[derive(Debug, Default)]
pub struct MatchIndex {
    ids: Vec<String>,
    /// number of distinct filter keys per run
    need: Vec<u32>,
    /// key -> value -> indexes of the runs that require key=value
    by_key: HashMap<String, HashMap<String, Vec<u32>>>,
    /// the highest-priority run with an empty filter
    match_all: Option<usize>,
}

/// The attribute value as the filters compare it (strings as they are; ints, bools and
/// doubles in their decimal form; other kinds never match).
fn value_text(kv: &KeyValue) -> Option<Cow<'_, str>> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(Cow::Borrowed(s)),
        any_value::Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        any_value::Value::BoolValue(b) => Some(Cow::Owned(b.to_string())),
        any_value::Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

impl MatchIndex {
    /// Builds the index; `runs` in priority order.
    pub fn new(runs: Vec<OpenRun>) -> Self {
        let mut ix = MatchIndex::default();
        for (i, run) in runs.into_iter().enumerate() {
            let mut keys: Vec<&(String, String)> = run.matchers.iter().collect();
            keys.sort();
            keys.dedup_by(|a, b| a.0 == b.0);
            if keys.is_empty() && ix.match_all.is_none() {
                ix.match_all = Some(i);
            }
            for (k, v) in &keys {
                ix.by_key
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .push(i as u32);
            }
            ix.need.push(keys.len() as u32);
            ix.ids.push(run.id);
        }
        ix
    }

    /// Number of open runs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The run a resource with these attributes belongs to: the highest-priority run whose
    /// filter it satisfies. None when it carries `test.run.id` already (set by the service).
    pub fn choose(&self, attrs: &[KeyValue]) -> Option<&str> {
        if self.ids.is_empty() || attrs.iter().any(|kv| kv.key == RUN_ID_KEY) {
            return None;
        }
        let mut best = self.match_all;
        let mut counts: Vec<u32> = Vec::new();
        for (j, kv) in attrs.iter().enumerate() {
            let Some(values) = self.by_key.get(kv.key.as_str()) else {
                continue;
            };
            // the first occurrence of a key decides (as attribute lookup does)
            if attrs[..j].iter().any(|p| p.key == kv.key) {
                continue;
            }
            let Some(runs) = value_text(kv).and_then(|v| values.get(v.as_ref())) else {
                continue;
            };
            if counts.is_empty() {
                counts = vec![0; self.ids.len()];
            }
            for &i in runs {
                let i = i as usize;
                counts[i] += 1;
                if counts[i] == self.need[i] && best.is_none_or(|b| i < b) {
                    best = Some(i);
                }
            }
        }
        best.map(|i| self.ids[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }
    fn s(k: &str, v: &str) -> KeyValue {
        kv(k, any_value::Value::StringValue(v.into()))
    }
    fn run(id: &str, m: &[(&str, &str)]) -> OpenRun {
        OpenRun {
            id: id.into(),
            matchers: m
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn all_keys_must_match_and_priority_wins() {
        let ix = MatchIndex::new(vec![
            run("newest", &[("ns", "qa"), ("team", "pay")]),
            run("ns-only", &[("ns", "qa")]),
            run("port", &[("port", "8080")]),
            run("all", &[]),
        ]);
        assert_eq!(
            ix.choose(&[s("ns", "qa"), s("team", "pay")]),
            Some("newest")
        );
        assert_eq!(
            ix.choose(&[s("team", "pay"), s("ns", "qa")]),
            Some("newest")
        );
        assert_eq!(ix.choose(&[s("ns", "qa"), s("team", "x")]), Some("ns-only"));
        assert_eq!(ix.choose(&[s("ns", "dev")]), Some("all"));
        assert_eq!(
            ix.choose(&[kv("port", any_value::Value::IntValue(8080))]),
            Some("port")
        );
        // a duplicated key counts once (the first occurrence decides)
        assert_eq!(ix.choose(&[s("ns", "dev"), s("ns", "qa")]), Some("all"));
        assert_eq!(ix.choose(&[s("ns", "qa"), s(RUN_ID_KEY, "own")]), None);
        let none_all = MatchIndex::new(vec![run("a", &[("ns", "qa")])]);
        assert_eq!(none_all.choose(&[s("ns", "dev")]), None);
        assert_eq!(none_all.choose(&[]), None);
        assert!(MatchIndex::new(vec![]).choose(&[s("ns", "qa")]).is_none());
    }

    #[test]
    fn equals_the_linear_definition() {
        // every subset filter over 3 keys, against every resource over those keys
        let keys = ["a", "b", "c"];
        let mut runs = Vec::new();
        for mask in 0..8u32 {
            for val in ["1", "2"] {
                let m: Vec<(&str, &str)> = keys
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, k)| (*k, val))
                    .collect();
                runs.push(run(&format!("r{mask}{val}"), &m));
            }
        }
        let ix = MatchIndex::new(runs.clone());
        for code in 0..27u32 {
            let attrs: Vec<KeyValue> = keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| match (code / 3u32.pow(i as u32)) % 3 {
                    0 => None,
                    1 => Some(s(k, "1")),
                    _ => Some(s(k, "2")),
                })
                .collect();
            let linear = runs
                .iter()
                .find(|r| {
                    r.matchers.iter().all(|(k, v)| {
                        attrs
                            .iter()
                            .any(|kv| &kv.key == k && value_text(kv).as_deref() == Some(v))
                    })
                })
                .map(|r| r.id.as_str());
            assert_eq!(ix.choose(&attrs), linear, "{attrs:?}");
        }
    }
}
