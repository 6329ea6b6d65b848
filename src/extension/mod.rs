//! Extensions: components that are not on the data path (the Collector's `extensions:`).
pub mod zpages;
