//! The pipeline router: for each request a receiver accepted, run the pipelines that take
//! that receiver and signal, apply their data-changing processors (once, before fan-out),
//! and hand the payload to every exporter's queue. Fan-out is a `Bytes` clone. Acceptance is
//! all-or-nothing across `block` exporters (DESIGN.md rule 4): room is reserved in all of
//! them first; if any reservation fails, all are released and the request is refused, so a
//! client's retry never duplicates data in a destination that took the first copy.

use crate::config::common::FullPolicy;
use crate::exporter::worker::Exporter;
use crate::pipeline::payload::{Payload, Signal};
use crate::processor::attributes::{AttrAction, Target, apply_to_payload};
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
            Refusal::MemoryLimit | Refusal::QueueFull(_) | Refusal::ShuttingDown
        )
    }

    /// Low-cardinality reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MemoryLimit => "memory_limit",
            Refusal::QueueFull(_) => "queue_full",
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
    /// resource / attributes processors, in order
    pub edits: Vec<(Target, Vec<AttrAction>)>,
    pub exporters: Vec<Arc<Exporter>>,
}

pub struct Router {
    routes: HashMap<(String, Signal), Vec<Arc<PipelineRt>>>,
    draining: AtomicBool,
    pub metrics: Arc<Metrics>,
}

impl Router {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Router {
            routes: HashMap::new(),
            draining: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn add(&mut self, receiver: &str, signal: Signal, p: Arc<PipelineRt>) {
        self.routes
            .entry((receiver.to_string(), signal))
            .or_default()
            .push(p);
    }

    pub fn accepts(&self, receiver: &str, signal: Signal) -> bool {
        self.routes.contains_key(&(receiver.to_string(), signal))
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
        let Some(pipelines) = self.routes.get(&(receiver.to_string(), payload.signal)) else {
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
        // what each exporter gets
        let mut deliveries: Vec<(&Arc<Exporter>, Payload)> = Vec::new();
        for p in pipelines {
            let data = if p.edits.is_empty() {
                payload.clone()
            } else {
                let steps: Vec<(Target, &[AttrAction])> =
                    p.edits.iter().map(|(t, a)| (*t, a.as_slice())).collect();
                apply_to_payload(&payload, &steps)
                    .map_err(|e| Refusal::BadData(format!("cannot decode request: {e}")))?
            };
            for e in &p.exporters {
                deliveries.push((e, data.clone()));
            }
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
        // phase 2: commit, and offer to drop-policy queues
        let mut reserved: HashMap<usize, crate::queue::Reservation> =
            reservations.into_iter().collect();
        for (i, (exp, data)) in deliveries.into_iter().enumerate() {
            match reserved.remove(&i) {
                Some(r) => exp.commit(r, data),
                None => exp.offer(data),
            }
        }
        Ok(())
    }
}
