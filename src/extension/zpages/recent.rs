//! Recent data: the last requests per signal kept in memory under a byte budget, so
//! `watchtower run` alone answers "what did my service just send". Requests are kept as
//! received, encoded (one copy, no decode); queries decode them. The copy is what makes the
//! budget true: a received payload can be a slice of a larger receive buffer, which a
//! refcount would keep alive whole.
//!
//! Bound: the payload bytes held never exceed the budget, split evenly across the three
//! signals so a noisy signal cannot evict the others. A request larger than its signal's
//! share is not kept.

use super::filter::Filter;
use super::items::{self, Item, Seen};
use crate::pipeline::payload::{Payload, Signal};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

struct Entry {
    receiver: Arc<str>,
    observed_time_unix_nano: u64,
    payload: Payload,
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<Entry>,
    bytes: u64,
}

/// The recent-data ring.
pub struct Recent {
    per_signal: u64,
    rings: [Mutex<Ring>; 3],
}

impl Recent {
    /// A ring holding at most `max_bytes` of payload in total.
    pub fn new(max_bytes: u64) -> Self {
        Recent {
            per_signal: max_bytes / 3,
            rings: Default::default(),
        }
    }

    /// The total budget in bytes.
    pub fn budget(&self) -> u64 {
        self.per_signal * 3
    }

    /// Payload bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.rings.iter().map(|r| r.lock().bytes).sum()
    }

    /// Keeps a request, evicting the oldest of its signal to stay in budget.
    pub fn push(&self, receiver: &str, payload: &Payload, now_unix_nano: u64) {
        let len = payload.len() as u64;
        if len > self.per_signal {
            return;
        }
        let mut r = self.rings[payload.signal as usize].lock();
        while r.bytes + len > self.per_signal {
            match r.entries.pop_front() {
                Some(e) => r.bytes -= e.payload.len() as u64,
                None => break,
            }
        }
        r.bytes += len;
        let receiver = match r.entries.back() {
            Some(e) if &*e.receiver == receiver => e.receiver.clone(),
            _ => receiver.into(),
        };
        r.entries.push_back(Entry {
            receiver,
            observed_time_unix_nano: now_unix_nano,
            payload: Payload::new(
                payload.signal,
                bytes::Bytes::copy_from_slice(&payload.bytes),
                payload.items,
            ),
        });
    }

    /// The newest `limit` items matching `f`, oldest first.
    pub fn query(&self, f: &Filter, limit: usize) -> Vec<Item> {
        let signals: Vec<Signal> = match f.signal {
            Some(s) => vec![s],
            None => Signal::ALL.to_vec(),
        };
        let mut out: Vec<Item> = Vec::new();
        for s in signals {
            // copy the refcounts out, decode without the lock
            let snapshot: Vec<(Arc<str>, u64, Payload)> = {
                let r = self.rings[s as usize].lock();
                r.entries
                    .iter()
                    .filter(|e| {
                        f.since_unix_nano
                            .is_none_or(|t| e.observed_time_unix_nano >= t)
                    })
                    .filter(|e| f.point.wants(super::filter::Kind::Receiver, &e.receiver))
                    .map(|e| {
                        (
                            e.receiver.clone(),
                            e.observed_time_unix_nano,
                            e.payload.clone(),
                        )
                    })
                    .collect()
            };
            let mut found: Vec<Item> = Vec::new();
            for (rx, t, p) in snapshot.iter().rev() {
                let component = format!("receiver/{rx}");
                let seen = Seen {
                    component: &component,
                    observed_time_unix_nano: *t,
                };
                let mut its: Vec<Item> = items::decode(p, &seen)
                    .into_iter()
                    .filter(|i| f.matches(i))
                    .collect();
                its.reverse();
                found.extend(its);
                if found.len() >= limit {
                    break;
                }
            }
            found.truncate(limit);
            out.extend(found);
        }
        // newest `limit` overall, then oldest first
        out.sort_by_key(|i| std::cmp::Reverse(i.observed_time_unix_nano));
        out.truncate(limit);
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::zpages::filter::{FilterParams, Kind};

    fn traces(service: &str, name: &str, trace: u8) -> Payload {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![trace; 16],
                        span_id: vec![1; 8],
                        name: name.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Payload::new(Signal::Traces, req.encode_to_vec().into(), 1)
    }

    fn filter(p: FilterParams) -> Filter {
        Filter::parse(&p, &|_| Some(Kind::Receiver), 1_000).unwrap()
    }

    #[test]
    fn ring_stays_in_budget_and_filters() {
        let one = traces("checkout", "GET /", 1).len() as u64;
        // room for 5 requests per signal
        let r = Recent::new(one * 5 * 3 + 2);
        for i in 0..50u8 {
            let svc = if i % 2 == 0 { "checkout" } else { "cart" };
            r.push("otlp", &traces(svc, &format!("op-{i}"), i), 100 + i as u64);
            assert!(r.held_bytes() <= r.budget());
        }
        let all = r.query(&filter(FilterParams::default()), 100);
        let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["op-45", "op-46", "op-47", "op-48", "op-49"]);
        let checkout = r.query(
            &filter(FilterParams {
                service: Some("checkout".into()),
                ..Default::default()
            }),
            100,
        );
        assert_eq!(checkout.len(), 2);
        assert!(checkout.iter().all(|i| i.service == "checkout"));
        let by_trace = r.query(
            &filter(FilterParams {
                trace_id: Some(hex::encode([47u8; 16])),
                ..Default::default()
            }),
            100,
        );
        assert_eq!(by_trace.len(), 1);
        assert_eq!(by_trace[0].name, "op-47");
        assert_eq!(
            by_trace[0].otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
            hex::encode([47u8; 16])
        );
        let limited = r.query(&filter(FilterParams::default()), 2);
        let names: Vec<&str> = limited.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["op-48", "op-49"], "the newest, oldest first");
        let since = r.query(
            &filter(FilterParams {
                since: Some("148".into()),
                ..Default::default()
            }),
            100,
        );
        assert_eq!(since.len(), 2);
        // a request over the per-signal share is not kept
        let small = Recent::new(30);
        small.push("otlp", &traces("a", "b", 1), 1);
        assert_eq!(small.held_bytes(), 0);
    }
}
