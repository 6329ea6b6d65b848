//! Assembles a running gateway from a config: exporters (with their queues and workers),
//! pipelines, the router, receivers and the admin endpoints; and tears it down in order on
//! shutdown: health goes 503, receivers stop accepting, queues drain up to the deadline.

use crate::config::{Config, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig};
use crate::exporter::worker::{BatchSettings, Exporter};
use crate::extension::health_check::{Health, health_router, metrics_router};
use crate::listener::{self, config::ListenerSettings, metrics::ListenerMetrics};
use crate::pipeline::payload::Signal;
use crate::pipeline::router::{PipelineRt, Router};
use crate::processor::attributes::Target;
use crate::processor::chain::Edit;
use crate::processor::memory_limiter::MemoryLimiter;
use crate::receiver::{grpc, http, serve};
use crate::telemetry::metrics::Metrics;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Addresses the listeners actually bound (useful with port 0).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// OTLP/gRPC listener of each receiver id.
    pub grpc: BTreeMap<String, SocketAddr>,
    /// OTLP/HTTP listener of each receiver id.
    pub http: BTreeMap<String, SocketAddr>,
    /// The health_check extension's listener (health, readiness, runs API).
    pub health: Option<SocketAddr>,
    /// The self-metrics listener (`service.telemetry.metrics.address`).
    pub metrics: Option<SocketAddr>,
    /// The zpages extension's listener.
    pub zpages: Option<SocketAddr>,
}

/// The file_storage extension a durable sending_queue names (validated by config::parse).
fn durable_storage<'c>(
    cfg: &'c Config,
    q: &crate::config::common::QueueSettings,
) -> Option<&'c crate::queue::durable::FileStorageConfig> {
    match cfg.extensions.get(q.storage.as_deref()?) {
        Some(ExtensionConfig::FileStorage(f)) => Some(f),
        _ => None,
    }
}

/// A running gateway.
pub struct App {
    /// Where the listeners are.
    pub bound: Bound,
    /// Self-metrics (Collector-named counters and gauges).
    pub metrics: Arc<Metrics>,
    /// Readiness state (what the health endpoint answers).
    pub health: Arc<Health>,
    /// Fans accepted requests out to the exporters' queues.
    pub router: Arc<Router>,
    /// Test runs (the `runs` extension / `runsummary` exporter), if configured.
    pub runs: Option<Arc<crate::runs::Registry>>,
    exporters: BTreeMap<String, Arc<Exporter>>,
    stop_receivers: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    receiver_tasks: Vec<JoinHandle<()>>,
    admin_tasks: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

/// The registry a config asks for: when the `runs` extension is enabled in
/// `service.extensions`, or a `runsummary` exporter is in a pipeline (then with defaults).
fn runs_registry(
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<crate::runs::Registry>>, String> {
    let ext = cfg
        .service
        .extensions
        .iter()
        .find_map(|id| match cfg.extensions.get(id) {
            Some(ExtensionConfig::Runs(c)) => Some(c.clone()),
            _ => None,
        });
    let summary_used = cfg
        .service
        .pipelines
        .values()
        .flat_map(|p| p.exporters.iter())
        .any(|e| matches!(cfg.exporters.get(e), Some(ExporterConfig::RunSummary(_))));
    match ext {
        Some(c) => crate::runs::Registry::new(c, Some(metrics.clone())).map(Some),
        None if summary_used => {
            crate::runs::Registry::new(crate::runs::RunsConfig::default(), Some(metrics.clone()))
                .map(Some)
        }
        None => Ok(None),
    }
    .map_err(|e| format!("extensions.runs: {e}"))
}

/// What shutdown could not deliver, per exporter.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Items still queued or in flight when `service.shutdown_timeout` ran out, by exporter id
    /// (durable queues keep them for the next start).
    pub undelivered: BTreeMap<String, u64>,
}

impl App {
    /// Starts everything the config describes. Fails (before serving) on bind or TLS errors.
    pub async fn start(cfg: Config) -> Result<App, String> {
        crate::telemetry::redact::set_secret_path_prefixes(
            &cfg.service.telemetry.logs.secret_path_prefixes,
        );
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let runs = runs_registry(&cfg, &metrics)?;
        let auths = crate::extension::auth::Authenticators::build(&cfg)?;
        if let Some(peers) = runs.as_ref().and_then(|r| r.peers.as_ref()) {
            let rc = cfg.extensions.values().find_map(|x| match x {
                ExtensionConfig::Runs(c) => Some(c),
                _ => None,
            });
            let peer_auth = rc.and_then(|c| c.peer_auth.as_ref().or(c.auth.as_ref()));
            if let Some(c) = auths
                .client(peer_auth)
                .map_err(|e| format!("extensions.runs.peer_auth: {e}"))?
            {
                peers.set_credential(c);
            }
        }
        let exporters = start_exporters(&cfg, runs.as_ref(), &metrics, &auths)?;
        let mut router = build_router(&cfg, &exporters, &metrics)?;
        router.set_runs(runs.clone());
        let router = Arc::new(router);
        health.watch_pressure(router.pressure.clone());
        let (stop_receivers, stop_rx) = watch::channel(false);
        let (stop_admin, admin_rx) = watch::channel(false);
        let grace = cfg.service.shutdown_timeout.0;
        let mut bound = Bound::default();
        let lm = Arc::new(ListenerMetrics::register(&mut metrics.registry.lock()));
        let mut admin_tasks = Vec::new();
        for id in &cfg.service.extensions {
            if let Some(ExtensionConfig::HealthCheck(h)) = cfg.extensions.get(id) {
                let l = serve::bind(&h.endpoint)
                    .await
                    .map_err(|e| format!("extensions.{id}: {e}"))?;
                bound.health = Some(l.local_addr().map_err(|e| e.to_string())?);
                let mut routes = health_router(health.clone(), &h.path);
                if let Some(r) = &runs {
                    let runs_auth = cfg.extensions.values().find_map(|x| match x {
                        ExtensionConfig::Runs(c) => c.auth.as_ref(),
                        _ => None,
                    });
                    let api = crate::runs::api::router(r.clone());
                    routes = routes.merge(match auths.server(runs_auth)? {
                        Some(a) => crate::extension::auth::protect(api, a, "runs"),
                        None => api,
                    });
                }
                admin_tasks.push(tokio::spawn(listener::serve(
                    l,
                    None,
                    routes,
                    ListenerSettings::http(id, &h.server_keys()),
                    lm.clone(),
                    admin_rx.clone(),
                    Duration::from_secs(1),
                )));
            }
        }
        // a replica joining a tier learns its open runs before its receivers accept data (so
        // everything it accepts is stamped) and before it reports ready; its runs API is
        // already up, so a run started meanwhile reaches it too
        if let Some(r) = &runs {
            r.learn_from_peers().await;
        }
        let receiver_tasks =
            match start_receivers(&cfg, &router, &stop_rx, grace, &mut bound, &lm, &auths).await {
                Ok(t) => t,
                Err(e) => {
                    let _ = stop_admin.send(true);
                    return Err(e);
                }
            };
        for id in &cfg.service.extensions {
            if let Some(ExtensionConfig::Zpages(z)) = cfg.extensions.get(id) {
                let (addr, tasks) = crate::extension::zpages::start(
                    z,
                    &cfg,
                    &metrics,
                    &exporters,
                    runs.as_ref(),
                    auths
                        .server(z.auth.as_ref())
                        .map_err(|e| format!("extensions.{id}: {e}"))?,
                    &admin_rx,
                )
                .await
                .map_err(|e| format!("extensions.{id}: {e}"))?;
                bound.zpages = Some(addr);
                admin_tasks.extend(tasks);
            }
        }
        let maddr = cfg.service.telemetry.metrics.endpoint();
        if !maddr.is_empty()
            && cfg.service.telemetry.metrics.level != crate::config::MetricsLevel::None
        {
            let l = serve::bind(&maddr)
                .await
                .map_err(|e| format!("service.telemetry.metrics.address: {e}"))?;
            bound.metrics = Some(l.local_addr().map_err(|e| e.to_string())?);
            admin_tasks.push(tokio::spawn(listener::serve(
                l,
                None,
                metrics_router(metrics.clone()),
                ListenerSettings::http_defaults(
                    "telemetry_metrics",
                    listener::config::DEFAULT_ADMIN_MAX_CONNECTIONS,
                ),
                lm.clone(),
                admin_rx.clone(),
                Duration::from_secs(1),
            )));
        }
        if let Some(r) = &runs {
            admin_tasks.push(r.spawn_maintenance(admin_rx.clone()));
        }
        health.set_ready();
        Ok(App {
            bound,
            metrics,
            health,
            router,
            runs,
            exporters,
            stop_receivers,
            stop_admin,
            receiver_tasks,
            admin_tasks,
            shutdown_timeout: grace,
        })
    }

    /// The running exporter `id` (its queue and metrics); `None` for an unknown id.
    pub fn exporter(&self, id: &str) -> Option<&Arc<Exporter>> {
        self.exporters.get(id)
    }

    /// Graceful shutdown (ARCHITECTURE.md rule 7).
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.health.set_draining();
        self.router.start_draining();
        let _ = self.stop_receivers.send(true);
        for t in self.receiver_tasks {
            let _ = t.await;
        }
        let mut report = ShutdownReport::default();
        let drains = self.exporters.iter().map(|(id, e)| {
            let id = id.clone();
            let e = e.clone();
            async move { (id, e.shutdown(deadline).await) }
        });
        for (id, left) in futures::future::join_all(drains).await {
            if left > 0 {
                report.undelivered.insert(id, left);
            }
        }
        if let Some(r) = &self.runs {
            // the summaries are final now (the runsummary queue drained above): without a
            // directory to keep them, each part goes to a peer
            r.hand_off(tokio::time::Instant::from_std(deadline)).await;
            r.flush_at_stop();
        }
        let _ = self.stop_admin.send(true);
        for t in self.admin_tasks {
            let _ = t.await;
        }
        report
    }
}

/// Batch settings per exporter, from the `batch` processor of the pipelines it is in.
fn batch_settings(cfg: &Config) -> BTreeMap<String, BatchSettings> {
    // batch settings per exporter: from the `batch` processor of the pipelines it is in
    let mut batch_for: BTreeMap<String, BatchSettings> = BTreeMap::new();
    for pl in cfg.service.pipelines.values() {
        for p in &pl.processors {
            if let Some(ProcessorConfig::Batch(b)) = cfg.processors.get(p) {
                for e in &pl.exporters {
                    batch_for.insert(e.clone(), b.settings());
                }
            }
        }
    }
    batch_for
}

/// Starts every exporter a pipeline uses: its sender, queue (memory or durable) and workers.
fn start_exporters(
    cfg: &Config,
    runs: Option<&Arc<crate::runs::Registry>>,
    metrics: &Arc<Metrics>,
    auths: &crate::extension::auth::Authenticators,
) -> Result<BTreeMap<String, Arc<Exporter>>, String> {
    let batch_for = batch_settings(cfg);
    let mut exporters: BTreeMap<String, Arc<Exporter>> = BTreeMap::new();
    let used: std::collections::BTreeSet<&String> = cfg
        .service
        .pipelines
        .values()
        .flat_map(|p| p.exporters.iter())
        .collect();
    for id in used {
        if cfg.connectors.contains_key(id) {
            continue;
        }
        let Some(ec) = cfg.exporters.get(id) else {
            return Err(format!("exporter {id} is not defined"));
        };
        let sender = match (ec, runs) {
            (ExporterConfig::RunSummary(_), Some(r)) => crate::runs::exporter::build(Arc::clone(r)),
            _ => ec
                .build_sender_with(id, auths)
                .map_err(|e| format!("exporters.{id}: {e}"))?,
        };
        let batch = batch_for.get(id).copied().unwrap_or_default();
        let exp = match durable_storage(cfg, ec.queue()) {
            Some(st) => Exporter::start_durable(
                id,
                sender,
                ec.queue(),
                st,
                ec.retry().clone(),
                batch,
                metrics.clone(),
            )
            .map_err(|e| format!("exporters.{id}.sending_queue.storage: {e}"))?,
            None => Exporter::start(
                id,
                sender,
                ec.queue(),
                ec.retry().clone(),
                batch,
                metrics.clone(),
            ),
        };
        if let (ExporterConfig::RunSummary(_), Some(r)) = (ec, runs) {
            r.attach(exp.clone());
        }
        exporters.insert(id.clone(), exp);
    }
    Ok(exporters)
}

/// Builds the router: each pipeline's memory limiter, data-changing processors and exporters,
/// registered under every receiver it takes data from.
fn build_router(
    cfg: &Config,
    exporters: &BTreeMap<String, Arc<Exporter>>,
    metrics: &Arc<Metrics>,
) -> Result<Router, String> {
    // memory limiters are shared per processor id
    let mut limiters: BTreeMap<String, Arc<MemoryLimiter>> = BTreeMap::new();
    let mut router = Router::new(metrics.clone());
    let mut filter_metrics: Option<crate::processor::filter::FilterMetrics> = None;
    let mut d2c_metrics: Option<crate::processor::deltatocumulative::D2cMetrics> = None;
    let mut d2c = BTreeMap::new();
    // pipelines fed by connectors first, so the connectors can hold them
    let mut order: Vec<(&String, &crate::config::PipelineConfig)> =
        cfg.service.pipelines.iter().collect();
    order.sort_by_key(|(_, pl)| pl.exporters.iter().any(|e| cfg.connectors.contains_key(e)));
    let mut built: BTreeMap<String, Arc<PipelineRt>> = BTreeMap::new();
    for (name, pl) in order {
        let signal = Signal::parse(crate::config::component_type(name))
            .ok_or_else(|| format!("invalid pipeline {name}"))?;
        let mut limiter = None;
        let mut edits = Vec::new();
        for p in &pl.processors {
            match cfg.processors.get(p) {
                Some(ProcessorConfig::MemoryLimiter(c)) => {
                    let l = match limiters.get(p) {
                        Some(l) => l.clone(),
                        None => {
                            let l = MemoryLimiter::start(
                                p,
                                c,
                                &router.memory,
                                router.pressure.clone(),
                            )?;
                            if c.limit_mib == 0 {
                                crate::config::memory_budget::check_resolved(
                                    cfg,
                                    p,
                                    l.soft_limit(),
                                    "the container's memory",
                                )
                                .map_err(|e| format!("processors.{p}: {e}"))?;
                            }
                            limiters.insert(p.clone(), l.clone());
                            l
                        }
                    };
                    limiter = Some(l);
                }
                Some(ProcessorConfig::Resource(c)) => {
                    edits.push(Edit::Attrs(Target::Resource, c.attributes.clone()))
                }
                Some(ProcessorConfig::Attributes(c)) => {
                    edits.push(Edit::Attrs(Target::Records, c.actions.clone()))
                }
                Some(ProcessorConfig::Filter(f)) => edits.push(Edit::Filter {
                    id: p.clone(),
                    filter: f.clone(),
                    metrics: filter_metrics
                        .get_or_insert_with(|| {
                            crate::processor::filter::FilterMetrics::register(
                                &mut metrics.registry.lock(),
                            )
                        })
                        .clone(),
                }),
                Some(ProcessorConfig::Transform(t)) => edits.push(Edit::Transform {
                    id: p.clone(),
                    transform: t.clone(),
                }),
                Some(ProcessorConfig::DeltaToCumulative(c)) => {
                    let m = d2c_metrics
                        .get_or_insert_with(|| {
                            crate::processor::deltatocumulative::D2cMetrics::register(
                                &mut metrics.registry.lock(),
                            )
                        })
                        .clone();
                    edits.push(Edit::DeltaToCumulative(
                        d2c.entry(p.clone())
                            .or_insert_with(|| {
                                Arc::new(
                                    crate::processor::deltatocumulative::DeltaToCumulative::new(
                                        c.clone(),
                                        m,
                                    ),
                                )
                            })
                            .clone(),
                    ))
                }
                Some(ProcessorConfig::Batch(_)) | None => {}
            }
        }
        let rt = Arc::new(PipelineRt {
            name: name.clone(),
            limiter,
            edits,
            exporters: pl
                .exporters
                .iter()
                .filter_map(|e| exporters.get(e).cloned())
                .collect(),
            connectors: pl
                .exporters
                .iter()
                .filter_map(|e| {
                    cfg.connectors
                        .get(e)
                        .map(|crate::config::ConnectorConfig::Routing(c)| (e, c))
                })
                .map(|(e, c)| {
                    let table = crate::connector::routing::Table::compile(c, signal)
                        .map_err(|errs| format!("connectors.{e}: {}", errs[0]))?;
                    let pipelines = table
                        .targets
                        .iter()
                        .map(|t| {
                            built
                                .get(t)
                                .cloned()
                                .ok_or_else(|| format!("connectors.{e}: pipeline {t} not built"))
                        })
                        .collect::<Result<_, String>>()?;
                    Ok(Arc::new(crate::connector::routing::RoutingRt {
                        id: e.clone(),
                        table,
                        pipelines,
                    }))
                })
                .collect::<Result<_, String>>()?,
        });
        built.insert(name.clone(), rt.clone());
        for r in &pl.receivers {
            if !cfg.connectors.contains_key(r) {
                router.add(r, signal, rt.clone());
            }
        }
    }
    Ok(router)
}

/// Binds and serves the OTLP receivers that some pipeline uses.
async fn start_receivers(
    cfg: &Config,
    router: &Arc<Router>,
    stop_rx: &watch::Receiver<bool>,
    grace: Duration,
    bound: &mut Bound,
    lm: &Arc<ListenerMetrics>,
    auths: &crate::extension::auth::Authenticators,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut receiver_tasks = Vec::new();
    for (id, rc) in &cfg.receivers {
        let ReceiverConfig::Otlp(oc) = rc;
        if !cfg
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.contains(id))
        {
            continue;
        }
        // one admission budget per receiver, shared by its gRPC and HTTP servers
        let budget = crate::receiver::admission::Budget::new(
            id,
            &oc.admission,
            &router.memory,
            router.pressure.clone(),
        );
        if let Some(g) = &oc.protocols.grpc {
            let l = serve::bind(&g.endpoint)
                .await
                .map_err(|e| format!("receivers.{id}.protocols.grpc: {e}"))?;
            let tls = g.tls.as_ref().map(serve::tls_acceptor).transpose()?;
            bound
                .grpc
                .insert(id.clone(), l.local_addr().map_err(|e| e.to_string())?);
            let rx = grpc::GrpcReceiver {
                id: id.as_str().into(),
                budget: budget.clone(),
                router: router.clone(),
                max_recv_bytes: (g.max_recv_msg_size_mib as usize) << 20,
                auth: auths
                    .server(g.auth.as_ref())
                    .map_err(|e| format!("receivers.{id}.protocols.grpc: {e}"))?,
                counters: crate::receiver::refusal::ReceiverCounters::shared(
                    &router.metrics,
                    id,
                    "grpc",
                ),
            };
            let settings = ListenerSettings::grpc(
                &format!("{id}/grpc"),
                g.keepalive.as_ref(),
                g.max_concurrent_streams,
                g.max_connections,
            );
            listener::config::warn_unenforced(id, g.keepalive.as_ref());
            receiver_tasks.push(tokio::spawn(listener::serve(
                l,
                tls,
                grpc::router(rx),
                settings,
                lm.clone(),
                stop_rx.clone(),
                grace,
            )));
        }
        if let Some(h) = &oc.protocols.http {
            let l = serve::bind(&h.endpoint)
                .await
                .map_err(|e| format!("receivers.{id}.protocols.http: {e}"))?;
            let tls = h.tls.as_ref().map(serve::tls_acceptor).transpose()?;
            bound
                .http
                .insert(id.clone(), l.local_addr().map_err(|e| e.to_string())?);
            let rx = http::HttpReceiver {
                id: id.as_str().into(),
                budget: budget.clone(),
                router: router.clone(),
                max_body: h.max_request_body_size.0 as usize,
                auth: auths
                    .server(h.auth.as_ref())
                    .map_err(|e| format!("receivers.{id}.protocols.http: {e}"))?,
                counters: crate::receiver::refusal::ReceiverCounters::shared(
                    &router.metrics,
                    id,
                    "http",
                ),
            };
            receiver_tasks.push(tokio::spawn(listener::serve(
                l,
                tls,
                http::router(rx, h),
                ListenerSettings::http(&format!("{id}/http"), &h.server_keys()),
                lm.clone(),
                stop_rx.clone(),
                grace,
            )));
        }
    }
    Ok(receiver_tasks)
}
