//! Merging what several replicas know about a run into one answer. Each replica summarizes
//! only the data it received; on read the parts are combined: counts add, latency sketches
//! merge (DDSketch buckets add, so merged quantiles equal those of one sketch fed everything),
//! exception and error-log groups merge by (service, type, fingerprint) within `max_groups`
//! (what does not fit is counted in `other`, as on one replica). Pure functions, so the rules
//! are unit-tested and the same whichever replica merges.

use crate::runs::summary::RunInfo;
use crate::runs::summary::{
    Group, Holder, Limits, MAX_HOLDERS, MAX_SERVICES, RunSource, RunState, Summary,
};
use std::collections::{BTreeMap, HashMap};

/// Example trace ids kept per merged group (as on one replica).
const EXAMPLES: usize = 3;

/// The tier's state of a run from two parts: `run-end` is addressed to the whole tier, so a
/// run ended on any replica is ended (a part still open belongs to a replica that missed the
/// call, and is ended by read repair in the API); otherwise open while any part is open.
fn merge_state(a: RunState, b: RunState) -> RunState {
    use RunState::*;
    match (a, b) {
        (Ended, _) | (_, Ended) => Ended,
        (Open, _) | (_, Open) => Open,
        _ => Expired,
    }
}

/// The tier's end time: the earliest any part recorded (every replica records the time of
/// the `run-end` call; a later one comes from a repeated call), none while open.
fn merge_ended(state: RunState, a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (state, a, b) {
        (RunState::Open, _, _) => None,
        (_, Some(x), Some(y)) => Some(x.min(y)),
        (_, x, y) => x.or(y),
    }
}

fn merge_source(a: RunSource, b: RunSource) -> RunSource {
    if a == RunSource::Api || b == RunSource::Api {
        RunSource::Api
    } else {
        RunSource::Attribute
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

fn merge_groups(into: &mut Vec<Group>, from: &[Group], max: usize, overflow: &mut u64) {
    let mut at: HashMap<(String, String, String), usize> = into
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.service.clone(), g.ty.clone(), g.fingerprint.clone()), i))
        .collect();
    for g in from {
        let key = (g.service.clone(), g.ty.clone(), g.fingerprint.clone());
        match at.get(&key) {
            Some(&i) => {
                let m = &mut into[i];
                m.count = m.count.saturating_add(g.count);
                m.first_seen_unix_nano =
                    min_nonzero(m.first_seen_unix_nano, g.first_seen_unix_nano);
                m.last_seen_unix_nano = m.last_seen_unix_nano.max(g.last_seen_unix_nano);
                for t in &g.example_trace_ids {
                    if m.example_trace_ids.len() < EXAMPLES && !m.example_trace_ids.contains(t) {
                        m.example_trace_ids.push(t.clone());
                    }
                }
            }
            None if into.len() >= max => *overflow = overflow.saturating_add(g.count),
            None => {
                at.insert(key, into.len());
                into.push(g.clone());
            }
        }
    }
}

/// Adds replica ids to a part's [`Summary::absorbed`]: a sorted set, at most
/// [`MAX_HOLDERS`] ids.
pub fn absorb_ids(into: &mut Vec<String>, ids: &[String]) {
    for id in ids {
        if let Err(i) = into.binary_search(id)
            && into.len() < MAX_HOLDERS
        {
            into.insert(i, id.clone());
        }
    }
}

/// Adds `b` (another replica's part of the same run) into `a`. Derived fields (rates,
/// quantiles, `complete`) are recomputed by [`Summary::finalize`], which this calls.
pub fn merge_summary(a: &mut Summary, b: &Summary, lim: &Limits) {
    a.state = merge_state(a.state, b.state);
    a.source = merge_source(a.source, b.source);
    for (k, v) in &b.labels {
        a.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if a.matchers.is_empty() {
        a.matchers = b.matchers.clone();
    }
    a.started_unix_ms = min_nonzero(a.started_unix_ms, b.started_unix_ms);
    a.ended_unix_ms = merge_ended(a.state, a.ended_unix_ms, b.ended_unix_ms);
    a.expires_unix_ms = a.expires_unix_ms.max(b.expires_unix_ms);
    a.late_joins.extend_from_slice(&b.late_joins);
    a.late_joins.sort_unstable();
    Holder::union(&mut a.holders, &b.holders);
    absorb_ids(&mut a.absorbed, &b.absorbed);
    let (t, u) = (&mut a.totals, &b.totals);
    t.spans = t.spans.saturating_add(u.spans);
    t.error_spans = t.error_spans.saturating_add(u.error_spans);
    t.log_records = t.log_records.saturating_add(u.log_records);
    t.error_log_records = t.error_log_records.saturating_add(u.error_log_records);
    t.metric_points = t.metric_points.saturating_add(u.metric_points);
    t.exceptions = t.exceptions.saturating_add(u.exceptions);
    for (name, s) in &b.services {
        if !a.services.contains_key(name) && a.services.len() >= MAX_SERVICES {
            // as when one replica summarizes: a service beyond the bound is counted in `other`
            let items = s
                .spans
                .saturating_add(s.log_records)
                .saturating_add(s.metric_points);
            a.other.service_items = a.other.service_items.saturating_add(items);
            continue;
        }
        let m = a.services.entry(name.clone()).or_default();
        m.spans = m.spans.saturating_add(s.spans);
        m.error_spans = m.error_spans.saturating_add(s.error_spans);
        m.exceptions = m.exceptions.saturating_add(s.exceptions);
        m.log_records = m.log_records.saturating_add(s.log_records);
        m.error_log_records = m.error_log_records.saturating_add(s.error_log_records);
        m.metric_points = m.metric_points.saturating_add(s.metric_points);
        for (sev, n) in &s.log_records_by_severity {
            let c = m.log_records_by_severity.entry(sev.clone()).or_insert(0);
            *c = c.saturating_add(*n);
        }
        for (op, o) in &s.operations {
            if !m.operations.contains_key(op) && m.operations.len() >= lim.max_operations {
                a.other.operation_spans = a.other.operation_spans.saturating_add(o.count);
                continue;
            }
            let mo = m.operations.entry(op.clone()).or_default();
            mo.count = mo.count.saturating_add(o.count);
            mo.error_count = mo.error_count.saturating_add(o.error_count);
            mo.sketch.merge(&o.sketch);
        }
    }
    merge_groups(
        &mut a.exception_groups,
        &b.exception_groups,
        lim.max_groups,
        &mut a.other.exceptions,
    );
    merge_groups(
        &mut a.error_log_groups,
        &b.error_log_groups,
        lim.max_groups,
        &mut a.other.error_log_records,
    );
    a.other.exceptions = a.other.exceptions.saturating_add(b.other.exceptions);
    a.other.error_log_records = a
        .other
        .error_log_records
        .saturating_add(b.other.error_log_records);
    a.other.operation_spans = a
        .other
        .operation_spans
        .saturating_add(b.other.operation_spans);
    a.other.service_items = a.other.service_items.saturating_add(b.other.service_items);
    a.dropped.spans = a.dropped.spans.saturating_add(b.dropped.spans);
    a.dropped.log_records = a.dropped.log_records.saturating_add(b.dropped.log_records);
    a.dropped.metric_points = a
        .dropped
        .metric_points
        .saturating_add(b.dropped.metric_points);
    a.reindex();
    a.finalize();
}

/// Merges the parts of one run; None when there are none. The parts are merged in one
/// canonical order (by their JSON form), whichever replica merges and in whatever order the
/// answers came: group order, the example trace ids kept and the last bits of float sums
/// depend on the order, and every replica must give the same answer, byte for byte.
pub fn merge_summaries(mut parts: Vec<Summary>, lim: &Limits) -> Option<Summary> {
    parts.sort_by_cached_key(|p| serde_json::to_vec(p).unwrap_or_default());
    let mut it = parts.into_iter();
    let mut first = it.next()?;
    for p in it {
        merge_summary(&mut first, &p, lim);
    }
    first.finalize();
    Some(first)
}

/// Merges run listings of several replicas: one line per id, counts added.
pub fn merge_infos(lists: Vec<Vec<RunInfo>>) -> Vec<RunInfo> {
    let mut by_id: BTreeMap<String, RunInfo> = BTreeMap::new();
    for r in lists.into_iter().flatten() {
        match by_id.get_mut(&r.id) {
            None => {
                by_id.insert(r.id.clone(), r);
            }
            Some(m) => {
                m.state = merge_state(m.state, r.state);
                m.source = merge_source(m.source, r.source);
                m.started_unix_ms = min_nonzero(m.started_unix_ms, r.started_unix_ms);
                m.ended_unix_ms = merge_ended(m.state, m.ended_unix_ms, r.ended_unix_ms);
                m.expires_unix_ms = m.expires_unix_ms.max(r.expires_unix_ms);
                for (k, v) in r.labels {
                    m.labels.entry(k).or_insert(v);
                }
                if m.matchers.is_empty() {
                    m.matchers = r.matchers;
                }
                if m.origin.is_none() {
                    m.origin = r.origin;
                }
                m.spans = m.spans.saturating_add(r.spans);
                m.log_records = m.log_records.saturating_add(r.log_records);
                m.exceptions = m.exceptions.saturating_add(r.exceptions);
            }
        }
    }
    by_id.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn spans(from: u64, n: u64) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (from..from + n)
                    .map(|i| Span {
                        name: format!("op{}", i % 3),
                        trace_id: vec![(i % 250) as u8 + 1; 16],
                        start_time_unix_nano: 0,
                        end_time_unix_nano: 1_000_000 * (1 + i % 97),
                        events: vec![Event {
                            name: "exception".into(),
                            time_unix_nano: 100 + i,
                            attributes: vec![
                                kv("exception.type", &format!("E{}", i % 7)),
                                kv("exception.message", &format!("order {i} failed")),
                            ],
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Splitting data over three replicas and merging gives what one replica computes.
    #[test]
    fn merged_parts_equal_one_replica() {
        let lim = Limits {
            max_groups: 10,
            max_operations: 200,
        };
        let mut one = Summary::new("r", RunSource::Api, 10);
        let mut parts: Vec<Summary> = (0..3)
            .map(|_| Summary::new("r", RunSource::Api, 10))
            .collect();
        for chunk in 0..30u64 {
            let rs = spans(chunk * 10, 10);
            one.add_spans(&rs, &lim);
            parts[(chunk % 3) as usize].add_spans(&rs, &lim);
        }
        one.finalize();
        let merged = merge_summaries(parts.clone(), &lim).unwrap_or_default();
        assert_eq!(merged.totals, one.totals);
        assert_eq!(
            merged.services, one.services,
            "counts and sketches (quantiles) equal"
        );
        let key = |s: &Summary| {
            let mut g: Vec<(String, String, u64, u64, u64)> = s
                .exception_groups
                .iter()
                .map(|g| {
                    (
                        g.ty.clone(),
                        g.fingerprint.clone(),
                        g.count,
                        g.first_seen_unix_nano,
                        g.last_seen_unix_nano,
                    )
                })
                .collect();
            g.sort();
            g
        };
        assert_eq!(key(&merged), key(&one), "groups merge by fingerprint");
        // with a tighter cap (the same on every replica) the merge stays within it
        let lim5 = Limits {
            max_groups: 5,
            ..lim
        };
        let mut parts5: Vec<Summary> = (0..3)
            .map(|_| Summary::new("r", RunSource::Api, 10))
            .collect();
        for chunk in 0..30u64 {
            parts5[(chunk % 3) as usize].add_spans(&spans(chunk * 10, 10), &lim5);
        }
        drop(parts);
        let capped = merge_summaries(parts5, &lim5).unwrap_or_default();
        assert_eq!(capped.exception_groups.len(), 5, "within max_groups");
        let merged = capped;
        let grouped: u64 = merged.exception_groups.iter().map(|g| g.count).sum();
        assert_eq!(grouped + merged.other.exceptions, 300);
        assert!(
            merged
                .exception_groups
                .iter()
                .all(|g| g.example_trace_ids.len() <= EXAMPLES)
        );
    }

    /// Whatever order the answers arrive in (each replica merges its own part first), the
    /// merged summary is the same to the byte.
    #[test]
    fn the_merge_does_not_depend_on_the_order_of_the_parts() {
        let lim = Limits {
            max_groups: 4,
            max_operations: 200,
        };
        let mut parts: Vec<Summary> = (0..3)
            .map(|_| Summary::new("r", RunSource::Api, 10))
            .collect();
        for chunk in 0..30u64 {
            parts[(chunk % 3) as usize].add_spans(&spans(chunk * 7, 10), &lim);
        }
        let json = |v: Vec<Summary>| {
            serde_json::to_string(&merge_summaries(v, &lim).unwrap_or_default()).unwrap_or_default()
        };
        let first = json(parts.clone());
        for order in [[1, 0, 2], [2, 1, 0], [1, 2, 0]] {
            let v = order.iter().map(|&i| parts[i].clone()).collect();
            assert_eq!(json(v), first, "{order:?}");
        }
    }

    /// A part from another replica may carry any count: merging saturates instead of
    /// overflowing (a panic in a debug build, a wrapped count in a release one).
    #[test]
    fn counts_from_another_replica_saturate() {
        let lim = Limits {
            max_groups: 4,
            max_operations: 200,
        };
        let mut a = Summary::new("r", RunSource::Api, 10);
        a.add_spans(&spans(0, 10), &lim);
        let mut b = a.clone();
        b.totals.spans = u64::MAX;
        for s in b.services.values_mut() {
            s.spans = u64::MAX;
            for o in s.operations.values_mut() {
                o.count = u64::MAX;
                o.sketch.count = u64::MAX;
            }
        }
        merge_summary(&mut a, &b, &lim);
        assert_eq!(a.totals.spans, u64::MAX);
        assert!(a.services.values().all(|s| s.spans == u64::MAX));
    }

    #[test]
    fn ended_anywhere_is_ended_otherwise_open_while_any_part_is_open() {
        let lim = Limits {
            max_groups: 5,
            max_operations: 5,
        };
        let mut a = Summary::new("r", RunSource::Attribute, 10);
        a.state = RunState::Ended;
        a.ended_unix_ms = Some(5);
        let b = Summary::new("r", RunSource::Api, 20);
        // a replica that missed run-end still has its part open: the run is ended
        let m = merge_summaries(vec![a.clone(), b.clone()], &lim).unwrap_or_default();
        assert_eq!(
            (m.state, m.source, m.ended_unix_ms, m.expires_unix_ms),
            (RunState::Ended, RunSource::Api, Some(5), 20)
        );
        // open and expired parts: open
        let mut x = b.clone();
        x.state = RunState::Expired;
        x.ended_unix_ms = Some(20);
        let m = merge_summaries(vec![x, b], &lim).unwrap_or_default();
        assert_eq!((m.state, m.ended_unix_ms), (RunState::Open, None));
        // the earliest end is the tier's
        let mut late = a.clone();
        late.ended_unix_ms = Some(9);
        let m = merge_summaries(vec![late, a.clone()], &lim).unwrap_or_default();
        assert_eq!(m.ended_unix_ms, Some(5));
        let mut c = a.clone();
        c.state = RunState::Expired;
        c.ended_unix_ms = Some(9);
        let m = merge_summaries(vec![a, c], &lim).unwrap_or_default();
        assert_eq!((m.state, m.ended_unix_ms), (RunState::Ended, Some(5)));
        assert!(merge_summaries(vec![], &lim).is_none());
    }
}
