//! The data path between receivers and exporters.
pub mod grpc;
pub mod payload;
pub(crate) mod router;
#[allow(missing_docs)] // being reworked on another branch; docs follow after the merge
pub mod wire;
