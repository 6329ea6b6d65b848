//! Admission control: a byte budget for request bodies a receiver holds in flight, charged
//! before the bytes are buffered, so memory is committed only for requests that fit. Keys
//! and meaning follow the otel-arrow receiver's `admission` section:
//!
//! - `request_limit_mib`: bytes in flight per receiver (compressed bodies as they arrive,
//!   their decompressed form and the protobuf made from JSON); 0 disables admission control.
//! - `waiting_limit_mib`: bytes of requests allowed to wait for room (an HTTP request with a
//!   `Content-Length` waits before its body is read); beyond it a request is refused at once.
//! - `waiting_timeout`: the longest a request waits (Watchtower's addition, so a waiting
//!   client gets a retryable answer instead of hanging).
//!
//! A refusal is retryable: HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with
//! `RetryInfo` (OTLP specification, "Failures" / "Throttling"), and readiness reports it.

use crate::config::common::Dur;
use crate::telemetry::memory_metrics::{Labels, MemoryMetrics};
use crate::telemetry::readiness::Pressure;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `receivers.otlp.admission`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// MiB of request bodies in flight per receiver (default 64; 0 disables admission control).
    pub request_limit_mib: u64,
    /// MiB of requests allowed to wait for room (default 16).
    pub waiting_limit_mib: u64,
    /// The longest a request waits for room (default 1 s).
    pub waiting_timeout: Dur,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            request_limit_mib: 64,
            waiting_limit_mib: 16,
            waiting_timeout: Dur::secs(1),
        }
    }
}

impl AdmissionConfig {
    /// Bytes this receiver may hold for request bodies (in flight plus waiting).
    pub fn budget_bytes(&self) -> u64 {
        if self.request_limit_mib == 0 {
            return 0;
        }
        (self.request_limit_mib + self.waiting_limit_mib) << 20
    }
}

/// Why a charge was refused (answered as [`crate::receiver::refusal::RefusalKind::Admission`]).
#[derive(Debug, Error, PartialEq)]
pub(crate) enum Refused {
    /// No room within `request_limit_mib`, or none freed within `waiting_timeout`.
    #[error(
        "admission control: receiver {receiver} has {in_flight} bytes in flight of request_limit_mib {limit_mib}; retry later"
    )]
    Full {
        /// The receiver's config id.
        receiver: String,
        /// Bytes charged when the request was refused.
        in_flight: u64,
        /// `request_limit_mib`.
        limit_mib: u64,
    },
    /// This request alone (its body, decompressed copy and the protobuf made from JSON) needs
    /// more than `request_limit_mib`: it could not be admitted even on an idle receiver, so
    /// the answer is "too large" (HTTP 413, gRPC RESOURCE_EXHAUSTED without `RetryInfo`), not
    /// a retryable refusal the client would repeat forever.
    #[error(
        "the request needs {needed} bytes in flight (its body, the decompressed copy and the protobuf translated from JSON), more than receiver {receiver}'s admission.request_limit_mib {limit_mib} allows; send smaller requests or raise request_limit_mib"
    )]
    NeverFits {
        /// The receiver's config id.
        receiver: String,
        /// Bytes this request would hold.
        needed: u64,
        /// `request_limit_mib`.
        limit_mib: u64,
    },
}

/// Bytes charged to a budget; released when dropped.
pub(crate) struct Charge {
    permit: Option<OwnedSemaphorePermit>,
    gauge: Gauge<u64, AtomicU64>,
}

impl Charge {
    /// Adds `other` to this charge (both released together).
    pub(crate) fn merge(&mut self, mut other: Charge) {
        match (&mut self.permit, other.permit.take()) {
            (Some(a), Some(b)) => a.merge(b),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Adds `n` more bytes of the same request (a decoded copy) from `budget`, now or never:
    /// [`Refused::NeverFits`] when this charge plus `n` exceeds the whole budget,
    /// [`Refused::Full`] when other requests hold the room.
    pub(crate) fn grow(&mut self, budget: &Budget, n: usize, t: Transport) -> Result<(), Refused> {
        if budget.sem.is_some() && self.bytes().saturating_add(n) > sem_capacity(budget.limit_mib) {
            return Err(Refused::NeverFits {
                receiver: budget.receiver.clone(),
                needed: self.bytes().saturating_add(n) as u64,
                limit_mib: budget.limit_mib,
            });
        }
        self.merge(budget.try_charge(n, t)?);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(p) = &self.permit {
            self.gauge.dec_by(p.num_permits() as u64);
        }
    }
}

/// One receiver's budget.
pub(crate) struct Budget {
    receiver: String,
    /// None: admission control disabled
    sem: Option<Arc<Semaphore>>,
    limit_mib: u64,
    waiting_limit: usize,
    waiting: AtomicUsize,
    wait: Duration,
    in_flight: Gauge<u64, AtomicU64>,
    waiting_gauge: Gauge<u64, AtomicU64>,
    refused_http: Counter,
    refused_grpc: Counter,
    pressure: Arc<Pressure>,
}

/// Which transport asked, for the refusal counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    /// OTLP/HTTP.
    Http,
    /// OTLP/gRPC.
    Grpc,
}

impl Budget {
    /// A budget for `receiver`.
    pub(crate) fn new(
        receiver: &str,
        cfg: &AdmissionConfig,
        metrics: &MemoryMetrics,
        pressure: Arc<Pressure>,
    ) -> Arc<Budget> {
        let limit = (cfg.request_limit_mib as usize) << 20;
        let l: Labels = vec![("receiver", receiver.to_string())];
        let refused = |t: &str| {
            metrics
                .refused
                .get_or_create(&vec![
                    ("receiver", receiver.to_string()),
                    ("transport", t.to_string()),
                ])
                .clone()
        };
        Arc::new(Budget {
            receiver: receiver.to_string(),
            sem: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit_mib: cfg.request_limit_mib,
            waiting_limit: (cfg.waiting_limit_mib as usize) << 20,
            waiting: AtomicUsize::new(0),
            wait: cfg.waiting_timeout.0,
            in_flight: metrics.in_flight.get_or_create(&l).clone(),
            waiting_gauge: metrics.waiting.get_or_create(&l).clone(),
            refused_http: refused("http"),
            refused_grpc: refused("grpc"),
            pressure,
        })
    }

    fn charge(&self, permit: Option<OwnedSemaphorePermit>) -> Charge {
        if let Some(p) = &permit {
            self.in_flight.inc_by(p.num_permits() as u64);
        }
        Charge {
            permit,
            gauge: self.in_flight.clone(),
        }
    }

    /// An empty charge (for merging into).
    pub(crate) fn none(&self) -> Charge {
        self.charge(None)
    }

    fn refuse(&self, t: Transport) -> Refused {
        match t {
            Transport::Http => self.refused_http.inc(),
            Transport::Grpc => self.refused_grpc.inc(),
        };
        let r = Refused::Full {
            receiver: self.receiver.clone(),
            in_flight: self.in_flight.get(),
            limit_mib: self.limit_mib,
        };
        self.pressure.refused(
            &format!("admission/{}", self.receiver),
            format!(
                "refusing requests: request_limit_mib {} in flight",
                self.limit_mib
            ),
            self.wait.max(Duration::from_secs(1)),
        );
        r
    }

    /// Charges `n` bytes now or refuses; never waits. Used as bytes stream in.
    pub(crate) fn try_charge(&self, n: usize, t: Transport) -> Result<Charge, Refused> {
        self.try_acquire(n).ok_or_else(|| self.refuse(t))
    }

    /// Charges `n` bytes if there is room now; `None` (nothing counted) otherwise.
    fn try_acquire(&self, n: usize) -> Option<Charge> {
        let Some(sem) = &self.sem else {
            return Some(self.none());
        };
        if n == 0 {
            return Some(self.none());
        }
        let n32 = u32::try_from(n).ok()?;
        let p = sem.clone().try_acquire_many_owned(n32).ok()?;
        Some(self.charge(Some(p)))
    }

    /// Charges `n` bytes, waiting up to `waiting_timeout` for room when the waiting
    /// requests' bytes stay within `waiting_limit_mib`; otherwise refuses at once.
    pub(crate) async fn charge_or_wait(&self, n: usize, t: Transport) -> Result<Charge, Refused> {
        let Some(sem) = &self.sem else {
            return Ok(self.none());
        };
        // a request that waits and is then admitted is not a refusal: only the final
        // answer is counted (and reported to readiness)
        match self.try_acquire(n) {
            Some(c) => return Ok(c),
            None if n > sem_capacity(self.limit_mib) => {
                return Err(Refused::NeverFits {
                    receiver: self.receiver.clone(),
                    needed: n as u64,
                    limit_mib: self.limit_mib,
                });
            }
            None => {}
        }
        // room to wait?
        let before = self.waiting.fetch_add(n, Ordering::SeqCst);
        let res = if before + n > self.waiting_limit {
            None
        } else {
            self.waiting_gauge.inc_by(n as u64);
            let r = tokio::time::timeout(self.wait, sem.clone().acquire_many_owned(n as u32))
                .await
                .ok()
                .and_then(Result::ok);
            self.waiting_gauge.dec_by(n as u64);
            r
        };
        self.waiting.fetch_sub(n, Ordering::SeqCst);
        match res {
            Some(p) => Ok(self.charge(Some(p))),
            None => Err(self.refuse(t)),
        }
    }
}

fn sem_capacity(limit_mib: u64) -> usize {
    (limit_mib as usize) << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(req: u64, wait: u64) -> (Arc<Budget>, Arc<Pressure>) {
        let m = MemoryMetrics::default();
        let p = Arc::new(Pressure::default());
        let cfg = AdmissionConfig {
            request_limit_mib: req,
            waiting_limit_mib: wait,
            waiting_timeout: Dur(Duration::from_millis(200)),
        };
        (Budget::new("otlp", &cfg, &m, p.clone()), p)
    }

    #[test]
    fn charges_until_full_then_refuses_and_releases_on_drop() {
        let (b, p) = budget(1, 0);
        let a = b.try_charge(700 << 10, Transport::Http).unwrap();
        assert_eq!(b.in_flight.get(), 700 << 10);
        let e = b.try_charge(400 << 10, Transport::Http).err().unwrap();
        assert!(e.to_string().contains("request_limit_mib 1"), "{e}");
        assert_eq!(b.refused_http.get(), 1);
        assert_eq!(p.reasons().len(), 1, "readiness reports the refusal");
        drop(a);
        assert_eq!(b.in_flight.get(), 0);
        assert!(b.try_charge(1 << 20, Transport::Grpc).is_ok());
    }

    #[test]
    fn merged_charges_release_together() {
        let (b, _) = budget(1, 0);
        let mut c = b.none();
        c.merge(b.try_charge(100, Transport::Http).unwrap());
        c.merge(b.try_charge(200, Transport::Http).unwrap());
        assert_eq!(c.bytes(), 300);
        assert_eq!(b.in_flight.get(), 300);
        drop(c);
        assert_eq!(b.in_flight.get(), 0);
    }

    #[test]
    fn growing_past_the_whole_budget_never_fits_and_is_not_an_admission_refusal() {
        let (b, p) = budget(1, 0);
        let mut c = b.try_charge(600 << 10, Transport::Http).unwrap();
        // room for 300 KiB more: grows
        c.grow(&b, 300 << 10, Transport::Http).unwrap();
        assert_eq!(c.bytes(), 900 << 10);
        // 200 KiB more is past 1 MiB for this request alone
        let e = c.grow(&b, 200 << 10, Transport::Http).unwrap_err();
        assert!(
            matches!(e, Refused::NeverFits { needed, .. } if needed == 1100 << 10),
            "{e}"
        );
        assert_eq!(b.refused_http.get(), 0);
        assert!(p.reasons().is_empty(), "readiness untouched");
        // another request holding the room is a (retryable) admission refusal
        let mut d = b.none();
        assert!(matches!(
            d.grow(&b, 200 << 10, Transport::Http),
            Err(Refused::Full { .. })
        ));
        assert_eq!(b.refused_http.get(), 1);
    }

    #[test]
    fn disabled_budget_admits_everything() {
        let (b, _) = budget(0, 0);
        assert!(b.try_charge(usize::MAX >> 4, Transport::Http).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_admitted_when_room_frees() {
        let (b, p) = budget(1, 1);
        let held = b.try_charge(1 << 20, Transport::Http).unwrap();
        let b2 = b.clone();
        let w = tokio::spawn(async move { b2.charge_or_wait(512 << 10, Transport::Http).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.waiting_gauge.get(), 512 << 10);
        drop(held);
        let c = w.await.unwrap().unwrap();
        assert_eq!(c.bytes(), 512 << 10);
        // waiting is not a refusal: nothing counted, readiness untouched
        assert_eq!(b.refused_http.get(), 0);
        assert!(p.reasons().is_empty(), "{:?}", p.reasons());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_waiting_timeout() {
        let (b, _) = budget(1, 1);
        let _held = b.try_charge(1 << 20, Transport::Http).unwrap();
        let t0 = tokio::time::Instant::now();
        assert!(b.charge_or_wait(1 << 10, Transport::Http).await.is_err());
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
        assert_eq!(b.refused_http.get(), 1, "one request, one refusal");
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_waiting_limit_is_refused_at_once() {
        let (b, _) = budget(2, 1);
        let _held = b.try_charge(2 << 20, Transport::Http).unwrap();
        let t0 = tokio::time::Instant::now();
        // 1 MiB + 1 byte fits the budget but not waiting_limit_mib 1
        assert!(
            b.charge_or_wait((1 << 20) + 1, Transport::Http)
                .await
                .is_err()
        );
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
