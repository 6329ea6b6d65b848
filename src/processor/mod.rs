//! Processors. `memory_limiter` gates admission, `batch` configures each destination's
//! batcher; `resource`, `attributes`, `filter`, `transform` (OTTL) and `deltatocumulative`
//! change data: `chain` decodes a request once, before fan-out, runs them in order and
//! re-encodes it once.

pub mod attributes;
pub mod batch;
pub mod cgroup;
pub mod chain;
pub mod deltatocumulative;
pub mod filter;
pub mod memory_limiter;
pub mod ottl;
pub mod resource;
pub mod transform;
