//! Test fixtures shared by the gRPC and HTTP receivers' unit tests: the parts of a receiver
//! named `otlp` (router, admission budget, counters) and the refusal counter they read.

use crate::pipeline::router::Router;
use crate::receiver::admission::{AdmissionConfig, Budget};
use crate::receiver::refusal::{ReceiverCounters, RefusalKind};
use crate::telemetry::metrics::{Metrics, RefusedLabels};
use std::sync::Arc;

/// A router with no pipeline, the default admission budget and the counters of receiver
/// `otlp` on `transport` (`grpc` or `http`).
pub(crate) fn parts(transport: &str) -> (Arc<Router>, Arc<Budget>, Arc<ReceiverCounters>) {
    let router = Arc::new(Router::new(Arc::new(Metrics::new())));
    let budget = Budget::new(
        "otlp",
        &AdmissionConfig::default(),
        &router.memory,
        router.pressure.clone(),
    );
    let counters = ReceiverCounters::shared(&router.metrics, "otlp", transport);
    (router, budget, counters)
}

/// Requests of receiver `otlp` on `transport` refused for `kind`, as counted.
pub(crate) fn refused_count(router: &Router, transport: &str, kind: RefusalKind) -> u64 {
    router
        .metrics
        .receiver_refused_reason
        .get_or_create(&RefusedLabels {
            receiver: "otlp".into(),
            transport: transport.into(),
            reason: kind.reason().into(),
        })
        .get()
}
