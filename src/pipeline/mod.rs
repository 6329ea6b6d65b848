//! The data path between receivers and exporters.
pub mod grpc;
pub mod payload;
pub mod router;
pub mod wire;
