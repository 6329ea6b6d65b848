//! The retry layer of the exporter helper (ARCHITECTURE.md rule 5): sends one batch through
//! the exporter's [`Sender`] until the destination takes it, the error is permanent, the retry
//! time runs out, or shutdown interrupts it.
//!
//! - Waits follow the Collector's `retry_on_failure` backoff ([`crate::exporter::retry`]).
//! - A server's `Retry-After` (HTTP) or `RetryInfo` (gRPC) replaces one backoff step when it
//!   is longer, and is honoured up to `max_interval`: it is clamped here, in one place, for
//!   every exporter and both queue kinds, so no answer can park a worker longer than that.
//! - `max_elapsed_time` (memory queues): a batch is dropped as `retries_exhausted` when the
//!   next wait would end past `max_elapsed_time` after its first attempt. Durable queues
//!   ignore it and retry until delivered or shut down: their bound is `max_bytes`, not time
//!   (collector#15324 lost hours of an outage to `max_elapsed_time`).
//! - The retry budget ([`crate::exporter::retry_budget`]): a retry without a token waits
//!   another backoff interval (at least 100 ms) instead of being sent; that wait counts
//!   against `max_elapsed_time` like any other.
//! - Shutdown (the hard-stop signal, sent at the shutdown deadline) ends a send or a wait: a
//!   memory batch is dropped as `shutdown`, a durable one stays in the queue
//!   ([`Delivery::Kept`]).

use super::obs::Obs;
use crate::config::common::RetrySettings;
use crate::exporter::retry_budget::RetryBudget;
use crate::exporter::{SendError, Sender, retry};
use crate::pipeline::payload::Payload;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The destination accepted it (possibly in part; the rest is counted as dropped).
    Accepted,
    /// Dropped for good and counted with this reason (`retries_exhausted`, `shutdown`, or
    /// the permanent error's reason such as `http_400`).
    Dropped(String),
    /// Shutdown interrupted a durable batch: it stays in the queue for the next start.
    Kept,
}

impl Delivery {
    /// True when the batch leaves the queue (a durable queue acks it).
    pub fn left_queue(&self) -> bool {
        !matches!(self, Delivery::Kept)
    }
}

/// What to do after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send again after this wait.
    Wait(Duration),
    /// `max_elapsed_time` would be exceeded: drop the batch (memory queues only).
    GiveUp,
}

/// The step after the failure of attempt `attempt` (from 0), `elapsed` after the first
/// attempt started. `retry_after` is the server's hint, clamped to `max_interval`. Pure but
/// for the jitter.
pub fn next_step(
    settings: &RetrySettings,
    attempt: u32,
    retry_after: Option<Duration>,
    elapsed: Duration,
    durable: bool,
) -> Step {
    let cap = settings.max_interval.0.max(settings.initial_interval.0);
    let wait = retry::backoff(settings, attempt, retry_after.map(|d| d.min(cap)));
    let max_elapsed = settings.max_elapsed_time.0;
    if !durable && !max_elapsed.is_zero() && elapsed + wait > max_elapsed {
        Step::GiveUp
    } else {
        Step::Wait(wait)
    }
}

/// A [`Sender`] wrapped with retries, the retry budget and the observability layer.
pub struct RetrySender {
    sender: Arc<dyn Sender>,
    settings: RetrySettings,
    budget: Option<Arc<RetryBudget>>,
    /// the batch comes from a durable queue (no `max_elapsed_time`; kept on shutdown)
    durable: bool,
    obs: Obs,
}

impl RetrySender {
    /// Wraps `sender`. `budget` is shared by the exporter's workers.
    pub fn new(
        sender: Arc<dyn Sender>,
        settings: RetrySettings,
        budget: Option<Arc<RetryBudget>>,
        durable: bool,
        obs: Obs,
    ) -> Self {
        RetrySender {
            sender,
            settings,
            budget,
            durable,
            obs,
        }
    }

    /// The shared retry budget (tests drain it).
    #[cfg(test)]
    pub(crate) fn budget_for_tests(&self) -> Arc<RetryBudget> {
        self.budget.clone().expect("a test rig with a budget")
    }

    /// Sends `batch` until it is accepted, dropped, or kept by shutdown (see the module doc).
    /// `hard_stop` turns true at the shutdown deadline.
    pub async fn deliver(&self, batch: Payload, mut hard_stop: watch::Receiver<bool>) -> Delivery {
        let signal = batch.signal;
        let items = batch.items;
        let started = Instant::now();
        let mut attempt = 0u32;
        let durable = self.durable;
        self.obs.sending(&batch);
        loop {
            let t0 = Instant::now();
            let result = tokio::select! {
                r = self.sender.send(batch.clone()) => r,
                _ = wait_true(&mut hard_stop) => Err(SendError::permanent("shutdown", "shutdown deadline reached during send")),
            };
            self.obs.send_latency(t0.elapsed());
            let e = match result {
                Ok(ok) => {
                    if let Some(b) = &self.budget {
                        b.on_success();
                    }
                    self.obs.accepted(signal, items, &ok);
                    return Delivery::Accepted;
                }
                Err(e) => e,
            };
            if !(e.retryable && self.settings.enabled && !*hard_stop.borrow()) {
                let stopping = *hard_stop.borrow();
                if durable && stopping && (e.retryable || e.reason == "shutdown") {
                    self.obs.kept(items);
                    return Delivery::Kept;
                }
                let reason = if e.retryable && stopping {
                    "shutdown".to_string()
                } else {
                    e.reason.clone()
                };
                self.obs.dropped(signal, items, &reason, &e);
                return Delivery::Dropped(reason);
            }
            let mut wait = match next_step(
                &self.settings,
                attempt,
                e.retry_after,
                started.elapsed(),
                durable,
            ) {
                Step::Wait(w) => w,
                Step::GiveUp => {
                    self.obs.dropped(signal, items, "retries_exhausted", &e);
                    return Delivery::Dropped("retries_exhausted".into());
                }
            };
            self.obs.retrying(&e, wait);
            attempt += 1;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wait_true(&mut hard_stop) => {
                        if durable {
                            self.obs.kept(items);
                            return Delivery::Kept;
                        }
                        self.obs.dropped(signal, items, "shutdown", &e);
                        return Delivery::Dropped("shutdown".into());
                    }
                }
                match &self.budget {
                    Some(b) if !b.try_retry() => {
                        self.obs.budget_exhausted();
                        // waiting for the budget counts against max_elapsed_time too
                        match next_step(&self.settings, attempt, None, started.elapsed(), durable) {
                            Step::Wait(w) => wait = w.max(Duration::from_millis(100)),
                            Step::GiveUp => {
                                self.obs.dropped(signal, items, "retries_exhausted", &e);
                                return Delivery::Dropped("retries_exhausted".into());
                            }
                        }
                    }
                    _ => break,
                }
            }
            self.obs.retried(signal, &e.reason);
        }
    }
}

/// Resolves once `rx` holds true; never, if the sender is gone first.
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // sender gone: never fires
            std::future::pending::<()>().await;
        }
    }
}
