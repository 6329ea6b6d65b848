//! Pure translations from OTLP to other wire models (no I/O): the remote-write and Loki
//! exporters call these inside their own workers, off the receivers' path.

pub mod loki;
pub mod otlp_json;
pub mod prometheus;
#[allow(missing_docs)] // being reworked on another branch; docs follow after the merge
pub mod protowire;
pub mod snappy;
