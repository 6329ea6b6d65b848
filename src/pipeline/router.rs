//! The pipeline router: for each request a receiver accepted, run the pipelines that take
//! that receiver and signal, apply their data-changing processors (once, before fan-out),
//! and hand the payload to every exporter's queue. Fan-out is a `Bytes` clone. Acceptance is
//! all-or-nothing across `block` exporters (ARCHITECTURE.md rule 4): room is reserved in all of
//! them first; if any reservation fails, all are released and the request is refused, so a
//! client's retry never duplicates data in a destination that took the first copy.

use crate::config::common::FullPolicy;
use crate::exporter::worker::Exporter;
use crate::pipeline::payload::{Payload, Signal};
use crate::processor::memory_limiter::MemoryLimiter;
use crate::telemetry::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// Why a request was not accepted. Every variant except `BadData` and `NoPipeline` is
/// retryable for the client.
#[derive(Debug, Error, PartialEq)]
pub enum Refusal {
    #[error("memory limit reached; retry later")]
    MemoryLimit,
    #[error("sending queue of exporter {0} is full; retry later")]
    QueueFull(String),
    #[error("durable queue of exporter {0} cannot write; retry later")]
    StorageUnavailable(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("no pipeline takes {0} from this receiver")]
    NoPipeline(Signal),
    #[error("{0}")]
    BadData(String),
}

impl Refusal {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Refusal::MemoryLimit
                | Refusal::QueueFull(_)
                | Refusal::StorageUnavailable(_)
                | Refusal::ShuttingDown
        )
    }

    /// Low-cardinality reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MemoryLimit => "memory_limit",
            Refusal::QueueFull(_) => "queue_full",
            Refusal::StorageUnavailable(_) => "storage_unavailable",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::NoPipeline(_) => "no_pipeline",
            Refusal::BadData(_) => "bad_data",
        }
    }
}

/// A pipeline as it runs.
pub struct PipelineRt {
    pub name: String,
    pub limiter: Option<Arc<MemoryLimiter>>,
    /// data-changing processors (resource, attributes, filter, transform), in order
    pub edits: Vec<crate::processor::chain::Edit>,
    pub exporters: Vec<Arc<Exporter>>,
    /// connectors this pipeline exports to (`routing`)
    pub connectors: Vec<Arc<crate::connector::routing::RoutingRt>>,
}

/// Runs a pipeline's data-changing processors on a payload and adds what each exporter gets,
/// following connectors into the pipelines they feed.
fn pipeline_deliveries<'p>(
    p: &'p PipelineRt,
    payload: &Payload,
    deliveries: &mut Vec<(&'p Arc<Exporter>, Payload)>,
    depth: usize,
) -> Result<(), Refusal> {
    let data = if p.edits.is_empty() {
        payload.clone()
    } else {
        match crate::processor::chain::apply(payload, &p.edits) {
            Ok(Some(d)) => d,
            // everything was filtered out: nothing to deliver for this pipeline
            Ok(None) => return Ok(()),
            Err(e) => return Err(Refusal::BadData(e.to_string())),
        }
    };
    for e in &p.exporters {
        deliveries.push((e, data.clone()));
    }
    if depth > 8 {
        return Err(Refusal::BadData("connectors nested too deep".into()));
    }
    for c in &p.connectors {
        for (i, part) in c.route(&data).map_err(Refusal::BadData)? {
            pipeline_deliveries(&c.pipelines[i], &part, deliveries, depth + 1)?;
        }
    }
    Ok(())
}

pub struct Router {
    /// receiver id -> pipelines per signal (indexed by `Signal as usize`); looked up by `&str`
    /// so routing a request allocates nothing
    routes: HashMap<String, [Vec<Arc<PipelineRt>>; 3]>,
    draining: AtomicBool,
    pub metrics: Arc<Metrics>,
    /// Test runs: while one is open, `test.run.id` is stamped before fan-out.
    runs: Option<Arc<crate::runs::Registry>>,
    /// Who refuses data now, for readiness (memory limiters, admission control).
    pub pressure: Arc<crate::telemetry::readiness::Pressure>,
    /// Memory limiter and admission self-metrics.
    pub memory: Arc<crate::telemetry::memory_metrics::MemoryMetrics>,
}

impl Router {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Router {
            routes: HashMap::new(),
            draining: AtomicBool::new(false),
            memory: Arc::new(crate::telemetry::memory_metrics::MemoryMetrics::register(
                &metrics,
            )),
            metrics,
            runs: None,
            pressure: Arc::default(),
        }
    }

    pub fn set_runs(&mut self, runs: Option<Arc<crate::runs::Registry>>) {
        self.runs = runs;
    }

    pub fn add(&mut self, receiver: &str, signal: Signal, p: Arc<PipelineRt>) {
        self.routes.entry(receiver.to_string()).or_default()[signal as usize].push(p);
    }

    pub fn accepts(&self, receiver: &str, signal: Signal) -> bool {
        self.pipelines(receiver, signal).is_some()
    }

    fn pipelines(&self, receiver: &str, signal: Signal) -> Option<&[Arc<PipelineRt>]> {
        let list = &self.routes.get(receiver)?[signal as usize];
        (!list.is_empty()).then_some(list.as_slice())
    }

    /// Whether every memory limiter of the pipelines taking `signal` from `receiver` has
    /// room for `bytes` more. Asked before a body is read, so a request the limiter would
    /// refuse is not buffered first.
    pub fn memory_has_room(&self, receiver: &str, signal: Signal, bytes: u64) -> bool {
        self.pipelines(receiver, signal).is_none_or(|ps| {
            ps.iter()
                .all(|p| p.limiter.as_ref().is_none_or(|l| l.has_room(bytes)))
        })
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Routes one validated payload. `Ok` means every destination has it queued (or counted
    /// it as dropped under its drop policy).
    pub async fn consume(&self, receiver: &str, payload: Payload) -> Result<(), Refusal> {
        if self.is_draining() {
            return Err(Refusal::ShuttingDown);
        }
        let Some(pipelines) = self.pipelines(receiver, payload.signal) else {
            return Err(Refusal::NoPipeline(payload.signal));
        };
        let bytes = payload.len() as u64;
        for p in pipelines {
            if let Some(l) = &p.limiter
                && !l.admit(bytes)
            {
                self.metrics.memory_limiter_refusals.inc();
                return Err(Refusal::MemoryLimit);
            }
        }
        // test runs: stamp once, before every pipeline (no run open: untouched)
        let payload = match &self.runs {
            Some(r) if r.any_open() => r
                .stamp(payload)
                .map_err(|e| Refusal::BadData(format!("cannot decode request: {e}")))?,
            _ => payload,
        };
        // zpages: taps and recent data see the request once it is accepted
        let seen = self
            .metrics
            .observe
            .wants_received()
            .then(|| payload.clone());
        // what each exporter gets
        let mut deliveries: Vec<(&Arc<Exporter>, Payload)> = Vec::new();
        for p in pipelines {
            pipeline_deliveries(p, &payload, &mut deliveries, 0)?;
        }
        // phase 1: reserve room in every block-policy queue
        let mut reservations = Vec::new();
        for (i, (exp, data)) in deliveries.iter().enumerate() {
            if exp.policy() != FullPolicy::Block {
                continue;
            }
            match exp.reserve(data.len() as u64).await {
                Some(r) => reservations.push((i, r)),
                None => {
                    drop(reservations);
                    exp.count_enqueue_failed(data.signal, data.items);
                    return Err(if self.is_draining() {
                        Refusal::ShuttingDown
                    } else {
                        Refusal::QueueFull(exp.id.clone())
                    });
                }
            }
        }
        // phase 2: durable queues first (their appends can fail), all at once so their
        // fsyncs overlap; then memory commits and offers, which cannot fail. A durable
        // failure therefore never leaves data in a memory queue of a refused request; it can
        // leave it in another durable queue (counted as duplicate risk).
        let mut reserved: HashMap<usize, crate::queue::Reservation> =
            reservations.into_iter().collect();
        let mut durable = Vec::new();
        let mut memory = Vec::new();
        for (i, (exp, data)) in deliveries.into_iter().enumerate() {
            let r = reserved.remove(&i);
            if exp.is_durable() {
                durable.push((exp, data, r));
            } else {
                memory.push((exp, data, r));
            }
        }
        if !durable.is_empty() {
            let results =
                futures::future::join_all(durable.into_iter().map(|(exp, data, r)| async move {
                    let items = data.items;
                    let ok = match r {
                        Some(r) => exp.commit(r, data).await.is_ok(),
                        // a failed drop-policy append is a counted drop, not a refusal
                        None => {
                            exp.offer(data).await;
                            true
                        }
                    };
                    (exp, items, ok)
                }))
                .await;
            if let Some((failed, _, _)) = results.iter().find(|(_, _, ok)| !ok) {
                for (exp, items, ok) in &results {
                    if *ok {
                        exp.count_duplicate_risk(*items);
                    }
                }
                // dropping `memory` releases the memory reservations
                return Err(Refusal::StorageUnavailable(failed.id.clone()));
            }
        }
        for (exp, data, r) in memory {
            match r {
                Some(r) => {
                    let _ = exp.commit(r, data).await;
                }
                None => {
                    exp.offer(data).await;
                }
            }
        }
        if let Some(p) = seen {
            self.metrics.observe.received(receiver, &p);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
