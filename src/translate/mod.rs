//! Pure translations from OTLP to other wire models (no I/O): the remote-write and Loki
//! exporters call these inside their own workers, off the receivers' path.

pub mod loki;
pub mod otlp_json;
pub mod prometheus;
pub mod snappy;
