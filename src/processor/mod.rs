//! Processors. `memory_limiter` gates admission, `batch` configures each destination's
//! batcher, `resource` and `attributes` change data: they decode a request once, before
//! fan-out, and re-encode it once (ARCHITECTURE.md rule 2).

pub mod attributes;
pub mod batch;
pub mod memory_limiter;
pub mod resource;
