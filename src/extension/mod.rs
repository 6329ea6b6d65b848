//! Extensions, one module per `extensions:` component type of the config (the Collector's
//! names): `health_check` (health and self-metrics endpoint) and `file_storage` (where durable
//! queues live). The `runs` extension lives in `src/runs/` (see docs/ARCHITECTURE.md).

pub mod file_storage;
pub mod health_check;
