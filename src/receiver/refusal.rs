//! Requests a receiver refuses before they reach the router (bad coding, bad credentials, too
//! large, undecodable): each is counted in `watchtower_receiver_refused_requests_total
//! {receiver, transport, reason}` and logged at `info` with the same fields and the answer's
//! message. Messages never carry a credential: callers pass only their own wording.

use crate::telemetry::metrics::{Metrics, RefusedLabels};

/// Counts and logs one refused request.
pub fn record(metrics: &Metrics, receiver: &str, transport: &str, reason: &str, message: &str) {
    metrics
        .receiver_refused_reason
        .get_or_create(&RefusedLabels {
            receiver: receiver.to_string(),
            transport: transport.to_string(),
            reason: reason.to_string(),
        })
        .inc();
    tracing::info!(receiver, transport, reason, message, "request refused");
}
