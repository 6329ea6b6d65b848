//! The MCP endpoint (`/mcp`, the Model Context Protocol's streamable-HTTP transport, built
//! with the official Rust SDK `rmcp`) for coding agents: the same queries as the JSON API, as
//! tools. `status` (the status document), `recent` (recent items by signal, service, trace id,
//! time), `wait_for` (the first item matching filters that passes within a timeout),
//! `run_summary` (a test run's summary) and `gate` (a run against a baseline). Tool errors
//! (bad filter, unknown run, timeout) are tool results with `isError`, naming the problem.
//! Like rmcp's default, only loopback `Host` headers are accepted (DNS-rebinding guard).

use super::api::Zpages;
use super::filter::FilterParams;
use super::items::{self, Seen};
use super::tap::Event;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Longest `wait_for` timeout, seconds.
pub const MAX_WAIT_SECONDS: f64 = 300.0;

/// `recent` arguments.
#[derive(Debug, Default, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RecentArgs {
    /// traces, metrics or logs
    pub signal: Option<String>,
    /// resource service.name
    pub service: Option<String>,
    /// 32 hex digits
    pub trace_id: Option<String>,
    /// a duration such as 5m (items seen that long ago or later), or Unix time in ns
    pub since: Option<String>,
    /// resource test.run.id
    pub run: Option<String>,
    /// exact span name, metric name or log body
    pub name: Option<String>,
    /// span status (error, ok, unset) or log severity text
    pub status: Option<String>,
    /// case-insensitive substring of the name or log body
    #[serde(rename = "match")]
    pub text: Option<String>,
    /// most items (default 20, max 1000)
    pub limit: Option<usize>,
}

/// `wait_for` arguments.
#[derive(Debug, Default, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct WaitArgs {
    /// tap point: a receiver or exporter id (default: every receiver)
    pub component: Option<String>,
    /// traces, metrics or logs
    pub signal: Option<String>,
    /// resource service.name
    pub service: Option<String>,
    /// resource test.run.id
    pub run: Option<String>,
    /// exact span name, metric name or log body
    pub name: Option<String>,
    /// span status (error, ok, unset) or log severity text
    pub status: Option<String>,
    /// case-insensitive substring of the name or log body
    #[serde(rename = "match")]
    pub text: Option<String>,
    /// seconds to wait (default 30, max 300)
    pub timeout_seconds: Option<f64>,
}

/// `run_summary` arguments.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunArgs {
    /// the test run id
    pub id: String,
}

/// `gate` arguments.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct GateArgs {
    /// the run to judge
    pub run: String,
    /// the baseline run to compare with (optional)
    pub baseline: Option<String>,
}

/// The MCP server: one per session, all sharing the zpages state.
#[derive(Clone)]
pub struct Mcp {
    z: Arc<Zpages>,
    tool_router: ToolRouter<Self>,
}

fn json(v: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

#[tool_router]
impl Mcp {
    pub fn new(z: Arc<Zpages>) -> Self {
        Mcp {
            z,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "The gateway's pipelines (receivers -> processors -> exporters) with counters and rates per component and signal, exporter queues and destination states, open test runs, build and uptime."
    )]
    async fn status(&self) -> Result<String, String> {
        json(&self.z.status())
    }

    #[tool(
        description = "Items (spans, log records, metrics) the gateway received recently, newest last, each with a summary and the item as OTLP/JSON. Filter by signal, service, trace_id, since (e.g. 5m), run, name, status, match."
    )]
    async fn recent(&self, Parameters(a): Parameters<RecentArgs>) -> Result<String, String> {
        let p = FilterParams {
            signal: a.signal,
            service: a.service,
            trace_id: a.trace_id,
            since: a.since,
            run: a.run,
            name: a.name,
            status: a.status,
            text: a.text,
            ..Default::default()
        };
        let f = self.z.filter(&p)?;
        let limit = a.limit.unwrap_or(20).clamp(1, super::api::MAX_RECENT_LIMIT);
        let z = self.z.clone();
        let found = tokio::task::spawn_blocking(move || {
            z.metrics
                .observe
                .recent()
                .map(|r| r.query(&f, limit))
                .ok_or_else(|| "recent data is off (zpages.recent.enabled: false)".to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        json(&serde_json::json!({ "items": found }))
    }

    #[tool(
        description = "Waits until an item matching the filters passes through the gateway (after this call starts) and returns it; fails after timeout_seconds (default 30). Filters: component, signal, service, run, name, status (error/ok/unset or log severity), match."
    )]
    async fn wait_for(&self, Parameters(a): Parameters<WaitArgs>) -> Result<String, String> {
        let p = FilterParams {
            component: a.component,
            signal: a.signal,
            service: a.service,
            run: a.run,
            name: a.name,
            status: a.status,
            text: a.text,
            ..Default::default()
        };
        let f = self.z.filter(&p)?;
        let secs = a.timeout_seconds.unwrap_or(30.0);
        if !(secs > 0.0 && secs <= MAX_WAIT_SECONDS) {
            return Err(format!(
                "timeout_seconds must be in (0, {MAX_WAIT_SECONDS}]"
            ));
        }
        let mut sub = self
            .z
            .metrics
            .observe
            .tap
            .subscribe(f.point.clone(), f.signal)
            .map_err(|e| e.to_string())?;
        let find = async {
            while let Some(ev) = sub.next().await {
                if let Event::Data(t) = ev {
                    let component = format!("{}/{}", t.kind.as_str(), t.component);
                    let seen = Seen {
                        component: &component,
                        observed_time_unix_nano: t.observed_time_unix_nano,
                    };
                    if let Some(it) = items::decode(&t.payload, &seen)
                        .into_iter()
                        .find(|i| f.matches(i))
                    {
                        return Some(it);
                    }
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs_f64(secs), find).await {
            Ok(Some(it)) => json(&it),
            Ok(None) => Err("the gateway is shutting down".into()),
            Err(_) => Err(format!("timeout: no matching item within {secs} s")),
        }
    }

    #[tool(
        description = "The summary of a test run (test.run.id): state, totals, operations with error rates and latency percentiles, exception groups."
    )]
    async fn run_summary(&self, Parameters(a): Parameters<RunArgs>) -> Result<String, String> {
        let reg = self
            .z
            .runs
            .as_ref()
            .ok_or("test runs are not enabled (add the runs extension)")?;
        let s = reg.get(&a.id).ok_or(format!("no run {:?}", a.id))?;
        json(&s)
    }

    #[tool(
        description = "Quality gate of a test run against an optional baseline run, with the default limits (block on a new exception type): verdict pass, warn or block, with the checks."
    )]
    async fn gate(&self, Parameters(a): Parameters<GateArgs>) -> Result<String, String> {
        let reg = self
            .z
            .runs
            .as_ref()
            .ok_or("test runs are not enabled (add the runs extension)")?;
        let run = reg.get(&a.run).ok_or(format!("no run {:?}", a.run))?;
        let baseline = match &a.baseline {
            Some(b) => Some(reg.get(b).ok_or(format!("no baseline run {b:?}"))?),
            None => None,
        };
        let report = crate::runs::gate::evaluate(
            &run,
            baseline.as_ref(),
            &crate::runs::gate::GateConfig::default(),
        );
        json(&report)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Watchtower, an OTLP gateway: see what telemetry flows through it (status, recent, wait_for) and judge test runs (run_summary, gate).",
        )
    }
}

/// The `/mcp` service (streamable HTTP), to nest in the zpages router.
pub fn service(
    z: Arc<Zpages>,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    Mcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    StreamableHttpService::new(
        move || Ok(Mcp::new(z.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    )
}
