//! The data path between receivers and exporters.
pub mod payload;
