//! Wire types compiled from `proto/` at build time (see build.rs): Prometheus remote-write 1.0
//! and the Loki push API. OTLP types come from the `opentelemetry-proto` crate.

/// Prometheus remote-write 1.0 (`prometheus.WriteRequest`).
#[allow(clippy::all, missing_docs)]
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Loki push API (`logproto.PushRequest`).
#[allow(clippy::all, missing_docs)]
pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// OTLP request types generated from `proto/opentelemetry` with pbjson's ProtoJSON
/// `Deserialize` impls (see build.rs); used only to decode OTLP/JSON, whose result is
/// re-encoded to protobuf at once. The rest of the gateway uses `opentelemetry-proto`.
#[allow(clippy::all, missing_docs, unused_qualifications, deprecated)]
pub mod otlp_json {
    include!(concat!(env!("OUT_DIR"), "/otlp_json.rs"));
}
