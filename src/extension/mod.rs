//! Extensions, one module per `extensions:` component type of the config (the Collector's
//! names): `health_check` (health and self-metrics endpoint), `file_storage` (where durable
//! queues live), the authenticators other components refer to by id (`bearertokenauth`,
//! `basicauth`) and `zpages` (status pages, tap, recent data, MCP). The `runs` extension lives
//! in `src/runs/` (see docs/ARCHITECTURE.md).

pub(crate) mod auth;
pub(crate) mod basicauth;
pub(crate) mod bearertokenauth;
pub mod file_storage;
pub mod health_check;
pub mod zpages;
