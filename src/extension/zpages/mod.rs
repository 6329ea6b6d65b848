//! The `zpages` extension (the Collector's name; default endpoint `localhost:55679`): see what
//! flows through the gateway without any backend. It serves the status graph with counters
//! and rates, a live tap of items (NDJSON), recent data, the Collector's `/debug/*z` pages,
//! the effective config with secrets masked, and a web page at `/`.
//!
//! Layout: `tap` and `recent` are fed by the data path through `observe::Observe`;
//! `items` decodes requests into items for viewers; `filter` parses the shared query
//! filters; `status` builds the status document; `api` and `pages` are the HTTP side.

pub(crate) mod api;
pub mod client;
pub(crate) mod filter;
pub(crate) mod items;
pub(crate) mod mcp;
pub(crate) mod observe;
pub(crate) mod pages;
pub(crate) mod recent;
pub(crate) mod status;
pub(crate) mod tap;

use crate::config::common::ByteSize;
use serde::Deserialize;

/// `extensions.zpages` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZpagesConfig {
    /// Listen address; loopback by default (the pages show data and config).
    pub endpoint: String,
    /// The recent-data ring (`recent:`).
    pub recent: RecentConfig,
    /// Bounds of each tap stream (`tap:`).
    pub tap: TapConfig,
    /// `auth: { authenticator: <extension id> }`: every page, API and `/mcp` request must
    /// carry that authenticator's credential (401 with `WWW-Authenticate` otherwise), as the
    /// receivers' `auth` does. `basicauth` suits the web page (browsers prompt for it).
    pub auth: Option<crate::extension::auth::AuthRef>,
}

impl Default for ZpagesConfig {
    fn default() -> Self {
        ZpagesConfig {
            endpoint: "localhost:55679".into(),
            recent: RecentConfig::default(),
            tap: TapConfig::default(),
            auth: None,
        }
    }
}

/// `zpages.recent`: the recent-data ring.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecentConfig {
    /// Keep recent data; default true.
    pub enabled: bool,
    /// Payload bytes kept, all signals together (a third each).
    pub max_bytes: ByteSize,
}

impl Default for RecentConfig {
    fn default() -> Self {
        RecentConfig {
            enabled: true,
            max_bytes: ByteSize(16 << 20),
        }
    }
}

/// `zpages.tap`: bounds of each tap viewer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TapConfig {
    /// Requests buffered per viewer before it loses some.
    pub buffer_requests: usize,
    /// Bytes buffered per viewer before it loses some.
    pub buffer_bytes: ByteSize,
    /// Viewers at once (tap streams and waits); more get 503.
    pub max_viewers: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        let b = tap::Bounds::default();
        TapConfig {
            buffer_requests: b.requests,
            buffer_bytes: ByteSize(b.bytes),
            max_viewers: b.subscribers,
        }
    }
}

impl ZpagesConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        crate::receiver::config::check_endpoint(&self.endpoint)
            .map_err(|e| format!("endpoint: {e}"))?;
        if self.tap.buffer_requests == 0 || self.tap.buffer_bytes.0 == 0 {
            return Err("tap.buffer_requests and tap.buffer_bytes must be positive".into());
        }
        Ok(())
    }

    /// The per-stream buffer bounds of a tap (requests and bytes), from `tap:`.
    pub fn bounds(&self) -> tap::Bounds {
        tap::Bounds {
            requests: self.tap.buffer_requests,
            bytes: self.tap.buffer_bytes.0,
            subscribers: self.tap.max_viewers,
        }
    }
}

/// Starts the extension: turns recent data on, sets the tap bounds, binds the endpoint and
/// serves the pages until `stop`. Returns the bound address and the tasks to await.
pub async fn start(
    z: &ZpagesConfig,
    cfg: &crate::config::Config,
    metrics: &std::sync::Arc<crate::telemetry::metrics::Metrics>,
    exporters: &std::collections::BTreeMap<
        String,
        std::sync::Arc<crate::exporter::worker::Exporter>,
    >,
    runs: Option<&std::sync::Arc<crate::runs::Registry>>,
    auth: Option<std::sync::Arc<dyn crate::extension::auth::ServerAuthenticator>>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(std::net::SocketAddr, Vec<tokio::task::JoinHandle<()>>), String> {
    use std::sync::Arc;
    if z.recent.enabled {
        metrics.observe.enable_recent(z.recent.max_bytes.0);
    }
    metrics.observe.tap.set_bounds(z.bounds());
    let queue_capacity = cfg
        .exporters
        .iter()
        .filter(|(id, _)| exporters.contains_key(*id))
        .map(|(id, e)| (id.clone(), (e.queue().queue_size, e.queue().max_bytes.0)))
        .collect();
    let state = Arc::new(api::Zpages {
        topology: status::Topology::from_config(cfg),
        config: crate::telemetry::redact::config(&cfg.source),
        metrics: metrics.clone(),
        exporters: exporters.clone(),
        queue_capacity,
        runs: runs.cloned(),
        rates: Default::default(),
    });
    let l = crate::receiver::serve::bind(&z.endpoint).await?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let tasks = vec![
        tokio::spawn(state.clone().sample_rates(stop.clone())),
        tokio::spawn(crate::receiver::serve::serve(
            l,
            None,
            match auth {
                Some(a) => crate::extension::auth::protect(api::router(state), a, "zpages"),
                None => api::router(state),
            },
            stop.clone(),
            std::time::Duration::from_secs(1),
        )),
    ];
    Ok((addr, tasks))
}
