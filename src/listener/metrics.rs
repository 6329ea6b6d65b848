//! Self-metrics of the listeners: connections accepted, open, refused at the cap, and closed
//! by the server with the reason (idle, max_connection_age, evicted, body_timeout, shutdown).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    pub listener: String,
    pub reason: String,
}

/// Connection counters per listener.
#[derive(Default)]
pub struct ListenerMetrics {
    pub accepted: Family<ListenerLabels, Counter>,
    pub refused: Family<ListenerLabels, Counter>,
    pub closed: Family<CloseLabels, Counter>,
    pub open: Family<ListenerLabels, Gauge>,
}

impl ListenerMetrics {
    /// Registers the families in `reg`.
    pub fn register(reg: &mut Registry) -> Self {
        let m = ListenerMetrics::default();
        reg.register(
            "watchtower_listener_connections_accepted",
            "Connections accepted, per listener",
            m.accepted.clone(),
        );
        reg.register(
            "watchtower_listener_connections_refused",
            "Connections refused because max_connections was reached with none idle",
            m.refused.clone(),
        );
        reg.register(
            "watchtower_listener_connections_closed",
            "Connections the server closed, per listener and reason",
            m.closed.clone(),
        );
        reg.register(
            "watchtower_listener_connections",
            "Open connections, per listener",
            m.open.clone(),
        );
        m
    }

    pub fn labels(listener: &str) -> ListenerLabels {
        ListenerLabels {
            listener: listener.to_string(),
        }
    }
}
