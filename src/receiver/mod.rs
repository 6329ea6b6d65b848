//! The `otlp` receiver: OTLP over gRPC (:4317) and HTTP (:4318). Receivers decode only what
//! must be decoded (JSON at the edge), validate and count on the wire format, and hand
//! payloads to the router; they never wait on an exporter beyond the bounded enqueue.

pub mod admission;
pub mod config;
pub mod grpc;
pub mod grpc_admission;
pub mod http;
pub mod json;
pub mod refusal;
pub mod serve;
#[cfg(test)]
mod test_support;
