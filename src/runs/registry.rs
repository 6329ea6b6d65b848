//! The run registry: open and ended runs, their summaries, matching for stamping, expiry,
//! and saving to disk. The data path only touches it through [`Registry::any_open`] (one
//! atomic load: with no run open the router's zero-copy path is unchanged) and
//! [`Registry::stamp`]; aggregation happens in the `runsummary` exporter's own workers.

use crate::exporter::worker::Exporter;
use crate::pipeline::payload::{Payload, Signal};
use crate::runs::stamp::{OpenRun, stamp};
use crate::runs::summary::{Limits, RunSource, RunState, Summary, now_ms, run_id};
use crate::runs::{RunsConfig, RunsError, persist};
use crate::telemetry::metrics::{ExporterLabels, Metrics};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What `POST /runs` asks for.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StartRequest {
    pub id: Option<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// overrides the extension's max_duration for this run, e.g. "30m"
    pub max_duration: Option<String>,
}

/// One line of `GET /runs`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub state: RunState,
    pub source: RunSource,
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub spans: u64,
    pub log_records: u64,
    pub exceptions: u64,
}

struct Entry {
    summary: Summary,
    /// runsummary drop counters when this process started counting for the run
    drop_base: Option<[u64; 3]>,
    dirty: bool,
    /// `end` was called: no longer stamped, waiting for the summary queue to drain
    ending: bool,
}

pub struct Registry {
    cfg: RunsConfig,
    limits: Limits,
    dir: Option<PathBuf>,
    open_count: AtomicUsize,
    open: RwLock<Arc<Vec<OpenRun>>>,
    runs: Mutex<BTreeMap<String, Entry>>,
    exporters: Mutex<Vec<Arc<Exporter>>>,
    metrics: Option<Arc<Metrics>>,
}

fn slot(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn valid_id(id: &str) -> Result<(), RunsError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(RunsError::Invalid(
            "id must be 1-256 characters without '/' or control characters".into(),
        ));
    }
    Ok(())
}

impl Registry {
    /// Creates the registry and reloads saved runs from `directory`.
    pub fn new(cfg: RunsConfig, metrics: Option<Arc<Metrics>>) -> Result<Arc<Self>, String> {
        let dir = cfg.directory.as_ref().map(PathBuf::from);
        let mut runs = BTreeMap::new();
        if let Some(d) = &dir {
            let loaded =
                persist::load_all(d).map_err(|e| format!("runs directory {}: {e}", d.display()))?;
            for s in loaded {
                let open = s.state == RunState::Open;
                runs.insert(
                    s.id.clone(),
                    Entry {
                        summary: s,
                        // counters restart with the process; `dropped` so far is kept
                        drop_base: open.then_some([0; 3]),
                        dirty: false,
                        ending: false,
                    },
                );
            }
            if !runs.is_empty() {
                tracing::info!(runs = runs.len(), dir = %d.display(), "reloaded run summaries");
            }
        }
        let reg = Arc::new(Registry {
            limits: Limits {
                max_groups: cfg.max_groups,
                max_operations: cfg.max_operations,
            },
            cfg,
            dir,
            open_count: AtomicUsize::new(0),
            open: RwLock::new(Arc::new(Vec::new())),
            runs: Mutex::new(runs),
            exporters: Mutex::new(Vec::new()),
            metrics,
        });
        reg.rebuild_open(&reg.runs.lock());
        Ok(reg)
    }

    /// A `runsummary` exporter whose drops are reported in the summaries and whose queue
    /// `end` waits for.
    pub fn attach(&self, e: Arc<Exporter>) {
        self.exporters.lock().push(e);
        // runs reloaded as open count drops from now on
        let base = self.drop_counts();
        for e in self.runs.lock().values_mut() {
            if e.drop_base.is_some() {
                e.drop_base = Some(base);
            }
        }
    }

    /// Cheap check for the router's hot path.
    #[inline]
    pub fn any_open(&self) -> bool {
        self.open_count.load(Ordering::Relaxed) > 0
    }

    /// Stamps `test.run.id` on the resources an open run matches.
    pub fn stamp(&self, payload: Payload) -> Result<Payload, prost::DecodeError> {
        let open = self.open.read().clone();
        Ok(stamp(&payload, &open)?.unwrap_or(payload))
    }

    fn rebuild_open(&self, runs: &BTreeMap<String, Entry>) {
        let mut open: Vec<(&Summary, OpenRun)> = runs
            .values()
            .filter(|e| {
                e.summary.state == RunState::Open && e.summary.source == RunSource::Api && !e.ending
            })
            .map(|e| {
                (
                    &e.summary,
                    OpenRun {
                        id: e.summary.id.clone(),
                        matchers: e
                            .summary
                            .matchers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    },
                )
            })
            .collect();
        // most recently started first: it wins when filters overlap
        open.sort_by_key(|o| std::cmp::Reverse(o.0.started_unix_ms));
        let list: Vec<OpenRun> = open.into_iter().map(|(_, o)| o).collect();
        self.open_count.store(list.len(), Ordering::Relaxed);
        *self.open.write() = Arc::new(list);
    }

    fn drop_counts(&self) -> [u64; 3] {
        let mut out = [0u64; 3];
        let Some(m) = &self.metrics else { return out };
        for e in self.exporters.lock().iter() {
            let l = ExporterLabels {
                exporter: e.id.clone(),
            };
            for s in Signal::ALL {
                out[slot(s)] +=
                    m.exporter_enqueue_failed.get(s, &l) + m.exporter_send_failed.get(s, &l);
            }
        }
        out
    }

    fn view(&self, e: &Entry, now: [u64; 3]) -> Summary {
        let mut s = e.summary.clone();
        if let Some(b) = e.drop_base {
            s.dropped.spans += now[0].saturating_sub(b[0]);
            s.dropped.metric_points += now[1].saturating_sub(b[1]);
            s.dropped.log_records += now[2].saturating_sub(b[2]);
        }
        s.finalize();
        s
    }

    fn freeze(e: &mut Entry, now: [u64; 3], state: RunState) {
        if let Some(b) = e.drop_base.take() {
            e.summary.dropped.spans += now[0].saturating_sub(b[0]);
            e.summary.dropped.metric_points += now[1].saturating_sub(b[1]);
            e.summary.dropped.log_records += now[2].saturating_sub(b[2]);
        }
        e.summary.state = state;
        e.summary.ended_unix_ms = Some(now_ms());
        e.summary.finalize();
        e.dirty = true;
    }

    /// Makes room for one more run by forgetting the oldest ended one.
    fn make_room(&self, runs: &mut BTreeMap<String, Entry>) -> Result<(), RunsError> {
        if runs.len() < self.cfg.max_runs {
            return Ok(());
        }
        let oldest = runs
            .values()
            .filter(|e| e.summary.state != RunState::Open)
            .min_by_key(|e| e.summary.ended_unix_ms.unwrap_or(0))
            .map(|e| e.summary.id.clone());
        match oldest {
            Some(id) => {
                runs.remove(&id);
                if let Some(d) = &self.dir {
                    persist::remove(d, &id);
                }
                Ok(())
            }
            None => Err(RunsError::TooMany(self.cfg.max_runs)),
        }
    }

    pub fn start(&self, req: StartRequest) -> Result<Summary, RunsError> {
        let id = req
            .id
            .clone()
            .unwrap_or_else(|| format!("run-{}-{:04x}", now_ms(), rand::random::<u16>()));
        valid_id(&id)?;
        let max = match &req.max_duration {
            Some(d) => crate::config::common::parse_duration(d)
                .map_err(|e| RunsError::Invalid(format!("max_duration: {e}")))?,
            None => self.cfg.max_duration.0,
        };
        if max.is_zero() {
            return Err(RunsError::Invalid("max_duration must be positive".into()));
        }
        for k in req.matchers.keys().chain(req.labels.keys()) {
            if k.is_empty() {
                return Err(RunsError::Invalid("empty label or match key".into()));
            }
        }
        let counts = self.drop_counts();
        let mut runs = self.runs.lock();
        if runs.contains_key(&id) {
            return Err(RunsError::Conflict(id));
        }
        self.make_room(&mut runs)?;
        let mut s = Summary::new(&id, RunSource::Api, now_ms() + max.as_millis() as u64);
        s.labels = req.labels;
        s.matchers = req.matchers;
        let entry = Entry {
            summary: s,
            drop_base: Some(counts),
            dirty: true,
            ending: false,
        };
        let view = self.view(&entry, counts);
        runs.insert(id.clone(), entry);
        self.rebuild_open(&runs);
        tracing::info!(run = %id, "run started");
        Ok(view)
    }

    /// Ends a run: stamping stops at once; then waits (bounded) for the runsummary queue to
    /// drain so the summary includes what was accepted before the call.
    pub async fn end(&self, id: &str) -> Result<Summary, RunsError> {
        let counts = self.drop_counts();
        {
            let mut runs = self.runs.lock();
            let e = runs
                .get_mut(id)
                .ok_or_else(|| RunsError::NotFound(id.into()))?;
            if e.summary.state != RunState::Open {
                return Ok(self.view(e, counts));
            }
            // stop stamping now; the state becomes Ended after the drain
            e.ending = true;
            self.rebuild_open(&runs);
        }
        self.wait_drained(self.cfg.end_drain_timeout.0).await;
        let now = self.drop_counts();
        let mut runs = self.runs.lock();
        let e = runs
            .get_mut(id)
            .ok_or_else(|| RunsError::NotFound(id.into()))?;
        if e.summary.state == RunState::Open {
            Self::freeze(e, now, RunState::Ended);
        }
        let view = self.view(e, now);
        drop(runs);
        self.flush();
        tracing::info!(run = %id, spans = view.totals.spans, "run ended");
        Ok(view)
    }

    async fn wait_drained(&self, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let held: u64 = self
                .exporters
                .lock()
                .iter()
                .map(|e| e.queue_stats().1)
                .sum();
            if held == 0 || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn get(&self, id: &str) -> Option<Summary> {
        let now = self.drop_counts();
        let runs = self.runs.lock();
        runs.get(id).map(|e| self.view(e, now))
    }

    pub fn list(&self) -> Vec<RunInfo> {
        let runs = self.runs.lock();
        let mut out: Vec<RunInfo> = runs
            .values()
            .map(|e| {
                let s = &e.summary;
                RunInfo {
                    id: s.id.clone(),
                    state: s.state,
                    source: s.source,
                    labels: s.labels.clone(),
                    matchers: s.matchers.clone(),
                    started_unix_ms: s.started_unix_ms,
                    ended_unix_ms: s.ended_unix_ms,
                    spans: s.totals.spans,
                    log_records: s.totals.log_records,
                    exceptions: s.totals.exceptions,
                }
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.started_unix_ms));
        out
    }

    /// Aggregates one batch (called by the runsummary exporter's workers). Resources without
    /// `test.run.id` are ignored; an unknown id starts a run of source `attribute`.
    pub fn ingest(&self, p: &Payload) -> Result<(), prost::DecodeError> {
        match p.signal {
            Signal::Traces => {
                let req = ExportTraceServiceRequest::decode(p.bytes.clone())?;
                self.each(
                    req.resource_spans.iter().map(|r| (run_id(&r.resource), r)),
                    |s, r, l| s.add_spans(r, l),
                );
            }
            Signal::Logs => {
                let req = ExportLogsServiceRequest::decode(p.bytes.clone())?;
                self.each(
                    req.resource_logs.iter().map(|r| (run_id(&r.resource), r)),
                    |s, r, l| s.add_logs(r, l),
                );
            }
            Signal::Metrics => {
                let req = ExportMetricsServiceRequest::decode(p.bytes.clone())?;
                self.each(
                    req.resource_metrics
                        .iter()
                        .map(|r| (run_id(&r.resource), r)),
                    |s, r, _| s.add_metrics(r),
                );
            }
        }
        Ok(())
    }

    fn each<'a, R: 'a>(
        &self,
        items: impl Iterator<Item = (Option<String>, &'a R)>,
        f: impl Fn(&mut Summary, &R, &Limits),
    ) {
        let items: Vec<(String, &R)> = items.filter_map(|(id, r)| id.map(|i| (i, r))).collect();
        if items.is_empty() {
            return;
        }
        let mut runs = self.runs.lock();
        for (id, r) in items {
            if !runs.contains_key(&id) {
                if valid_id(&id).is_err() || self.make_room(&mut runs).is_err() {
                    continue;
                }
                let expires = now_ms() + self.cfg.max_duration.0.as_millis() as u64;
                let drop_base = Some(self.drop_counts());
                runs.insert(
                    id.clone(),
                    Entry {
                        summary: Summary::new(&id, RunSource::Attribute, expires),
                        drop_base,
                        dirty: true,
                        ending: false,
                    },
                );
            }
            if let Some(e) = runs.get_mut(&id) {
                f(&mut e.summary, r, &self.limits);
                e.dirty = true;
            }
        }
    }

    /// Expires runs past their maximum duration.
    pub fn expire(&self) {
        let now = now_ms();
        let counts = self.drop_counts();
        {
            let mut runs = self.runs.lock();
            let mut changed = false;
            for e in runs.values_mut() {
                if e.summary.state == RunState::Open && now >= e.summary.expires_unix_ms {
                    tracing::warn!(run = %e.summary.id, "run reached max_duration; expired");
                    Self::freeze(e, counts, RunState::Expired);
                    changed = true;
                }
            }
            if changed {
                self.rebuild_open(&runs);
            }
        }
    }

    /// Saves every changed summary (no-op without a directory).
    pub fn flush(&self) {
        let Some(dir) = &self.dir else { return };
        let counts = self.drop_counts();
        let dirty: Vec<Summary> = {
            let mut runs = self.runs.lock();
            runs.values_mut()
                .filter(|e| e.dirty)
                .map(|e| {
                    e.dirty = false;
                    self.view(e, counts)
                })
                .collect()
        };
        for s in dirty {
            if let Err(e) = persist::save(dir, &s) {
                tracing::warn!(run = %s.id, error = %e, "cannot save run summary");
                if let Some(en) = self.runs.lock().get_mut(&s.id) {
                    en.dirty = true;
                }
            }
        }
    }

    /// Expires runs (every second) and saves changed summaries (every `flush_interval`) until
    /// `stop` turns true.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let reg = self.clone();
        let every = self.cfg.flush_interval.0.min(Duration::from_secs(1));
        let flush_every = self.cfg.flush_interval.0;
        tokio::spawn(async move {
            let mut last_flush = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {
                        reg.expire();
                        if last_flush.elapsed() >= flush_every {
                            reg.flush();
                            last_flush = tokio::time::Instant::now();
                        }
                    }
                    r = stop.changed() => {
                        if r.is_err() || *stop.borrow() { return; }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn spans(ns: &str, run: Option<&str>, n: usize) -> Payload {
        let mut attributes = vec![KeyValue {
            key: "service.namespace".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(ns.into())),
            }),
            ..Default::default()
        }];
        if let Some(r) = run {
            attributes.push(KeyValue {
                key: "test.run.id".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(r.into())),
                }),
                ..Default::default()
            });
        }
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Payload::new(Signal::Traces, req.encode_to_vec().into(), n as u64)
    }

    fn start(reg: &Registry, id: &str, ns: &str, max: Option<&str>) {
        let r = reg.start(StartRequest {
            id: Some(id.into()),
            matchers: [("service.namespace".to_string(), ns.to_string())].into(),
            max_duration: max.map(String::from),
            ..Default::default()
        });
        assert!(r.is_ok(), "{r:?}");
    }

    #[tokio::test]
    async fn lifecycle_stamp_end_expire_persist() {
        let dir = tempfile::tempdir().ok();
        let path = dir.as_ref().map(|d| d.path().to_string_lossy().to_string());
        let cfg = RunsConfig {
            directory: path.clone(),
            ..Default::default()
        };
        let reg = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!reg.any_open());
        start(&reg, "a", "qa", None);
        start(&reg, "short", "other", Some("1ms"));
        assert_eq!(
            reg.start(StartRequest {
                id: Some("a".into()),
                ..Default::default()
            }),
            Err(RunsError::Conflict("a".into()))
        );
        assert!(reg.any_open());
        // stamped, then summarized
        let stamped = reg
            .stamp(spans("qa", None, 3))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(reg.ingest(&stamped).is_ok());
        // carries its own id: a run of source `attribute`
        assert!(reg.ingest(&spans("dev", Some("own"), 2)).is_ok());
        assert_eq!(reg.get("a").map(|s| s.totals.spans), Some(3));
        assert_eq!(reg.get("own").map(|s| s.source), Some(RunSource::Attribute));
        tokio::time::sleep(Duration::from_millis(5)).await;
        reg.expire();
        assert_eq!(reg.get("short").map(|s| s.state), Some(RunState::Expired));
        reg.flush();
        // reload: `a` is still open with its counts
        let again = Registry::new(cfg, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.any_open());
        assert_eq!(
            again.get("a").map(|s| (s.state, s.totals.spans)),
            Some((RunState::Open, 3))
        );
        let ended = again.end("a").await.map(|s| s.state);
        assert_eq!(ended, Ok(RunState::Ended));
        assert!(!again.any_open());
        let untouched = again
            .stamp(spans("qa", None, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.ingest(&untouched).is_ok());
        assert_eq!(again.get("a").map(|s| s.totals.spans), Some(3));
        assert!(matches!(
            again.end("nope").await,
            Err(RunsError::NotFound(_))
        ));
    }
}
