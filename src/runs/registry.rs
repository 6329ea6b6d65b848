//! The run registry: open and ended runs, their summaries, matching for stamping, expiry,
//! and saving to disk. The data path only touches it through [`Registry::any_open`] (one
//! atomic load: with no run open the router's zero-copy path is unchanged) and
//! [`Registry::stamp`]; aggregation happens in the `runsummary` exporter's own workers.

use crate::exporter::worker::Exporter;
use crate::pipeline::payload::{Payload, Signal};
use crate::runs::limits::{self, valid_id};
use crate::runs::peers::Peers;
use crate::runs::stamp::{MatchIndex, OpenRun, stamp};
use crate::runs::summary::{Holder, Limits, RunInfo, RunSource, RunState, Summary, now_ms, run_id};
use crate::runs::{RunsConfig, RunsError, persist};
use crate::telemetry::metrics::{ExporterLabels, Metrics};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What `POST /runs` asks for.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StartRequest {
    /// Run id; generated (`run-<unix ms>-<4 hex digits>`) when absent.
    pub id: Option<String>,
    /// Free-form labels stored with the run and shown in its summary.
    pub labels: BTreeMap<String, String>,
    /// Resource attributes (JSON key `match`) data must carry, all of them, to be stamped with
    /// this run; empty: all data while the run is open.
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// overrides the extension's max_duration for this run, e.g. "30m"
    pub max_duration: Option<String>,
    /// Start time, set by the replica that received the call when it forwards the run to
    /// its peers (so every replica lists the run at the same place). Ignored unless within a
    /// day of this replica's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
    /// Expiry time, set like `started_unix_ms`; must be in the future.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_unix_ms: Option<u64>,
    /// The run-start this run comes from (`Summary::origin`), set like `started_unix_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// A run id for a `POST /runs` without one: `run-<unix ms>-<4 hex digits>`.
pub fn generate_id() -> String {
    format!("run-{}-{:04x}", now_ms(), rand::random::<u16>())
}

/// Default page size of `GET /runs`.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page size of `GET /runs` (`limit`).
pub const MAX_PAGE: usize = 1000;

/// What `GET /runs` asks for: `?limit=N&page_token=T&state=open`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageRequest {
    /// Most runs in the page, 1 to [`MAX_PAGE`].
    pub limit: usize,
    /// continue after the run with this (started_unix_ms, id)
    pub after: Option<(u64, String)>,
    /// Only runs in this state; all states when absent.
    pub state: Option<RunState>,
}

impl PageRequest {
    /// Parses the query parameters (`limit` 1-[`MAX_PAGE`], default [`DEFAULT_PAGE`];
    /// `page_token` from a previous answer; `state` open | ended | expired).
    pub fn parse(q: &BTreeMap<String, String>) -> Result<PageRequest, RunsError> {
        let limit = match q.get("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    RunsError::Invalid(format!("limit must be 1-{MAX_PAGE}, got {l:?}"))
                })?,
        };
        let after = match q.get("page_token") {
            None => None,
            Some(t) => Some(parse_token(t).ok_or_else(|| {
                RunsError::Invalid(format!("page_token {t:?} is not one this API returned"))
            })?),
        };
        let state = match q.get("state").map(String::as_str) {
            None => None,
            Some("open") => Some(RunState::Open),
            Some("ended") => Some(RunState::Ended),
            Some("expired") => Some(RunState::Expired),
            Some(s) => {
                return Err(RunsError::Invalid(format!(
                    "state must be open, ended or expired, got {s:?}"
                )));
            }
        };
        for k in q.keys() {
            if !["limit", "page_token", "state"].contains(&k.as_str()) {
                return Err(RunsError::Invalid(format!("unknown query parameter {k:?}")));
            }
        }
        Ok(PageRequest {
            limit,
            after,
            state,
        })
    }

    /// The query string that asks a peer for the same page.
    pub fn query(&self) -> String {
        let mut q = vec![format!("limit={}", self.limit.min(MAX_PAGE))];
        if let Some((ms, id)) = &self.after {
            q.push(format!("page_token={ms}.{}", hex::encode(id.as_bytes())));
        }
        if let Some(s) = self.state {
            q.push(format!(
                "state={}",
                match s {
                    RunState::Open => "open",
                    RunState::Ended => "ended",
                    RunState::Expired => "expired",
                }
            ));
        }
        q.join("&")
    }
}

fn parse_token(t: &str) -> Option<(u64, String)> {
    let (ms, id) = t.split_once('.')?;
    let id = String::from_utf8(hex::decode(id).ok()?).ok()?;
    Some((ms.parse().ok()?, id))
}

/// One page of `GET /runs`.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Page {
    /// The page's runs, newest first.
    pub runs: Vec<RunInfo>,
    /// present when more runs follow: pass it as `page_token`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// true when replicas of the tier did not answer (their runs and counts are missing)
    #[serde(default)]
    pub partial: bool,
    /// The peers that did not answer, when `partial`.
    #[serde(default)]
    pub missing_replicas: Vec<String>,
}

/// Sorts runs into listing order and cuts the page `req` asks for.
pub fn paginate(mut runs: Vec<RunInfo>, req: &PageRequest) -> Page {
    runs.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    if let Some((ms, id)) = &req.after {
        let after = (std::cmp::Reverse(*ms), id.as_str());
        runs.retain(|r| r.order_key() > after);
    }
    let more = runs.len() > req.limit;
    runs.truncate(req.limit);
    Page {
        partial: false,
        missing_replicas: Vec::new(),
        next_page_token: if more {
            runs.last().map(RunInfo::page_token)
        } else {
            None
        },
        runs,
    }
}

struct Entry {
    summary: Summary,
    /// runsummary drop counters when this process started counting for the run
    drop_base: Option<[u64; 3]>,
    dirty: bool,
    /// `end` was called: no longer stamped, waiting for the summary queue to drain
    ending: bool,
}

/// The runs of this replica: open runs (stamped into matching data), ended and expired
/// summaries kept for reading, persisted under `directory` when set.
/// Shared by the runs API, the stamping in the receivers and the `runsummary` exporter.
pub struct Registry {
    cfg: RunsConfig,
    limits: Limits,
    dir: Option<PathBuf>,
    open_count: AtomicUsize,
    /// evictions since start (when to rewrite the saved list)
    evictions: AtomicUsize,
    /// resources whose `test.run.id` would have opened a run beyond
    /// `max_new_runs_per_request` (not summarized)
    refused_new_runs: std::sync::atomic::AtomicU64,
    open: RwLock<Arc<MatchIndex>>,
    runs: Mutex<BTreeMap<String, Entry>>,
    exporters: Mutex<Vec<Arc<Exporter>>>,
    metrics: Option<Arc<Metrics>>,
    /// the other replicas of the tier (`peers` configured), for the API's fan-out
    pub peers: Option<Arc<Peers>>,
    /// when this process started (ms since the Unix epoch): a replica that started after a
    /// run ended never had a part of it
    pub started_unix_ms: u64,
    /// ids of the runs `max_runs` made this replica forget, newest last (at most
    /// [`EVICTED_KEPT`], saved in `directory`): a part forgotten is a part missing from the
    /// tier's answer
    evicted: Mutex<std::collections::VecDeque<String>>,
    /// runs a `run-end` reached before this replica held them (id, the tier's end time), newest
    /// last (at most [`EVICTED_KEPT`]): a run-start forwarded late, or a catch-up that read the
    /// run as open before the end, opens it ended
    ended_unknown: Mutex<std::collections::VecDeque<(String, u64)>>,
    /// the locked file of this replica's kept id (`directory`), held while the process runs
    _replica_id_lock: Option<std::fs::File>,
    /// runs whose part this replica handed to a peer as it stopped ([`Registry::hand_off`]),
    /// newest last (at most [`EVICTED_KEPT`]): it answers for them that it has no part,
    /// because a peer's part includes it
    handed: Mutex<std::collections::VecDeque<String>>,
    /// set (under the `runs` lock) when [`Registry::hand_off`] takes the parts out: a part
    /// absorbed after that would be left behind
    stopping: std::sync::atomic::AtomicBool,
}

/// Where in its `n` peers (sorted) a replica with id `me` starts handing its parts over: a
/// place of its own, so one dead address is not every replica's first try.
fn first_try(me: &str, n: usize) -> usize {
    let h = me
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    h % n.max(1)
}

/// How many evicted run ids a replica remembers.
pub const EVICTED_KEPT: usize = 4096;

fn slot(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl Registry {
    /// Creates the registry and reloads saved runs from `directory`.
    pub fn new(cfg: RunsConfig, metrics: Option<Arc<Metrics>>) -> Result<Arc<Self>, String> {
        let dir = cfg.directory.as_ref().map(PathBuf::from);
        let mut runs = BTreeMap::new();
        let mut evicted = std::collections::VecDeque::new();
        // with a directory, this replica keeps its id across restarts (its parts stay its own
        // whatever its address; without one, a restart is a new replica), and the directory
        // is locked first: a second process on it would load and count the same parts
        let mut kept_id = None;
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("runs directory {}: {e}", d.display()))?;
            kept_id = Some(
                persist::replica_id(d)
                    .map_err(|e| format!("runs directory {}: {e}", d.display()))?,
            );
            let loaded =
                persist::load_all(d).map_err(|e| format!("runs directory {}: {e}", d.display()))?;
            let clean = persist::take_clean_stop(d);
            for mut s in loaded {
                let open = s.state == RunState::Open;
                let crashed = open && !clean;
                if crashed {
                    // after a crash this part resumes now: what arrived since its last save is
                    // not in it (after a clean stop everything accepted was saved); kept with
                    // the earlier restarts and saved, so a later clean restart keeps the note
                    s.late_joins.push(now_ms());
                }
                runs.insert(
                    s.id.clone(),
                    Entry {
                        summary: s,
                        // counters restart with the process; `dropped` so far is kept
                        drop_base: open.then_some([0; 3]),
                        dirty: crashed,
                        ending: false,
                    },
                );
            }
            if !runs.is_empty() {
                tracing::info!(runs = runs.len(), dir = %d.display(), "reloaded run summaries");
            }
            evicted = persist::load_evicted(d, EVICTED_KEPT).into();
        }
        // empty entries are ignored, so `peers: ["${env:X:-}"]` means "no peers" when unset
        let entries: Vec<String> = cfg
            .peers
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect();
        let peers = if entries.is_empty() {
            None
        } else {
            let p = Peers::new(entries, cfg.peer_timeout.0)?;
            Some(Arc::new(match &kept_id {
                Some((id, _)) => p.with_self_id(id.clone()),
                None => p,
            }))
        };
        let reg = Arc::new(Registry {
            peers,
            limits: Limits {
                max_groups: cfg.max_groups,
                max_operations: cfg.max_operations,
            },
            cfg,
            dir,
            open_count: AtomicUsize::new(0),
            evictions: AtomicUsize::new(0),
            refused_new_runs: Default::default(),
            open: RwLock::new(Arc::new(MatchIndex::default())),
            runs: Mutex::new(runs),
            exporters: Mutex::new(Vec::new()),
            metrics,
            started_unix_ms: now_ms(),
            evicted: Mutex::new(evicted),
            ended_unknown: Mutex::new(Default::default()),
            handed: Mutex::new(Default::default()),
            stopping: Default::default(),
            _replica_id_lock: kept_id.map(|(_, f)| f),
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

    /// Resources not summarized because their batch already opened
    /// `max_new_runs_per_request` runs from `test.run.id` values.
    pub fn refused_new_runs(&self) -> u64 {
        self.refused_new_runs.load(Ordering::Relaxed)
    }

    /// Caps of one summary (also used when merging replicas' parts).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `run-end`'s drain wait (a peer's end answers only after it).
    pub fn end_drain_timeout(&self) -> Duration {
        self.cfg.end_drain_timeout.0
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
        let index = MatchIndex::new(open.into_iter().map(|(_, o)| o).collect());
        self.open_count.store(index.len(), Ordering::Relaxed);
        *self.open.write() = Arc::new(index);
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

    fn freeze(e: &mut Entry, now: [u64; 3], state: RunState, ended_unix_ms: u64) {
        if let Some(b) = e.drop_base.take() {
            e.summary.dropped.spans += now[0].saturating_sub(b[0]);
            e.summary.dropped.metric_points += now[1].saturating_sub(b[1]);
            e.summary.dropped.log_records += now[2].saturating_sub(b[2]);
        }
        e.summary.state = state;
        e.summary.ended_unix_ms = Some(ended_unix_ms);
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
                let mut ev = self.evicted.lock();
                if ev.len() >= EVICTED_KEPT {
                    ev.pop_front();
                }
                ev.push_back(id.clone());
                if let Some(d) = &self.dir {
                    // appended; rewritten whole (bounded) once per EVICTED_KEPT evictions
                    let compact = self.evictions.fetch_add(1, Ordering::Relaxed) % EVICTED_KEPT
                        == EVICTED_KEPT - 1;
                    let all: Option<Vec<String>> = compact.then(|| ev.iter().cloned().collect());
                    persist::save_evicted(d, &id, all.as_deref());
                }
                Ok(())
            }
            None => Err(RunsError::TooMany(self.cfg.max_runs)),
        }
    }

    /// Whether this replica handed its part of run `id` to a peer as it stopped.
    pub fn was_handed(&self, id: &str) -> bool {
        self.handed.lock().iter().any(|h| h == id)
    }

    /// Adds `part`, the part of run `part.id` that replica `from` handed over as it stopped
    /// ([`Registry::hand_off`]), to this replica's part: counts add as in a merged answer,
    /// and `from` (with the replicas its part had absorbed) joins [`Summary::absorbed`]. This
    /// part keeps its own state and end (a read settles a difference: read repair). Without a
    /// part of the run here (a run opened by `test.run.id` data elsewhere, or forgotten),
    /// `part` becomes this replica's part. Returns false when a part of `from` was absorbed
    /// already (it is not added twice). Saved at once (with a directory).
    ///
    /// # Errors
    /// [`RunsError::Invalid`] for a bad run id; [`RunsError::TooMany`] when a new part finds
    /// no room (`max_runs`); [`RunsError::Stopping`] once this replica hands its own parts
    /// over.
    pub fn absorb(&self, mut part: Summary, from: &str) -> Result<bool, RunsError> {
        limits::valid_id(&part.id)?;
        let id = part.id.clone();
        let counts = self.drop_counts();
        let lim = self.limits();
        {
            let mut runs = self.runs.lock();
            if self.stopping.load(Ordering::Relaxed) {
                return Err(RunsError::Stopping);
            }
            match runs.get_mut(&id) {
                Some(e) => {
                    if e.summary.absorbed.iter().any(|a| a == from) {
                        return Ok(false);
                    }
                    let (state, ended, origin) = (
                        e.summary.state,
                        e.summary.ended_unix_ms,
                        e.summary.origin.clone(),
                    );
                    crate::runs::replicas::merge_summary(&mut e.summary, &part, &lim);
                    e.summary.state = state;
                    e.summary.ended_unix_ms = ended;
                    e.summary.origin = origin;
                    crate::runs::replicas::absorb_ids(&mut e.summary.absorbed, &[from.to_string()]);
                    e.dirty = true;
                }
                None => {
                    self.make_room(&mut runs)?;
                    crate::runs::replicas::absorb_ids(&mut part.absorbed, &[from.to_string()]);
                    part.partial = false;
                    part.missing_replicas.clear();
                    part.reindex();
                    let open = part.state == RunState::Open;
                    runs.insert(
                        id.clone(),
                        Entry {
                            summary: part,
                            drop_base: open.then_some(counts),
                            dirty: true,
                            ending: false,
                        },
                    );
                    self.rebuild_open(&runs);
                }
            }
        }
        tracing::info!(run = %id, from = %from, "runs: took over the part of a replica that stopped");
        self.flush();
        Ok(true)
    }

    /// As this replica stops (after its queues drained, so its parts are final): hands each
    /// part it holds to one peer (`POST /runs/{id}/absorb`), which adds it to its own, so a
    /// scale-down or a rolling update loses no counts and leaves no replica missing. Only
    /// without a `directory` (with one, the parts stay on the volume for the next start).
    /// A part is tried on the peers in turn until one takes it, while `deadline` (at least one
    /// `peer_timeout` from now) allows; a
    /// call that may have reached a peer without an answer is not sent elsewhere (the part
    /// could be counted twice): that part, like one no peer took, is lost, and the run's
    /// holders name this replica. Returns how many parts were handed over.
    pub async fn hand_off(&self, deadline: tokio::time::Instant) -> usize {
        let Some(peers) = self.peers.as_ref().filter(|_| self.dir.is_none()) else {
            return 0;
        };
        let counts = self.drop_counts();
        let parts: Vec<Summary> = {
            let mut runs = self.runs.lock();
            self.stopping.store(true, Ordering::Relaxed);
            let parts = std::mem::take(&mut *runs)
                .into_values()
                .map(|e| self.view(&e, counts))
                .collect();
            self.rebuild_open(&runs);
            parts
        };
        if parts.is_empty() {
            return 0;
        }
        // queues that took all of shutdown_timeout still leave one peer call's time (the
        // chart's grace period has 10 s beyond shutdown_timeout)
        let deadline = deadline.max(tokio::time::Instant::now() + self.cfg.peer_timeout.0);
        let (mut targets, _) = peers.resolve().await;
        let me = peers.self_id.clone();
        // each replica starts at its own place in the list, so one dead address (a pod just
        // deleted, still in DNS) is not every replica's first choice
        if !targets.is_empty() {
            let n = targets.len();
            targets.rotate_left(first_try(&me, n));
        }
        let mut handed = 0;
        // peers that timed out or are stopping themselves are tried last for the parts after
        let mut last: BTreeSet<String> = BTreeSet::new();
        for part in parts {
            let id = part.id.clone();
            let body = serde_json::json!({ "from": me, "part": part }).to_string();
            let path = format!("/runs/{}/absorb", crate::runs::client::path_id(&id));
            let order: Vec<&String> = targets
                .iter()
                .filter(|a| !last.contains(*a))
                .chain(targets.iter().filter(|a| last.contains(*a)))
                .collect();
            let mut outcome = "no peer took this replica's part of the run; it is lost, and answers name this replica";
            for addr in order {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                match peers.post(addr, &path, body.clone()).await {
                    Ok((Some(who), 200, _)) if who != me => {
                        outcome = "";
                        break;
                    }
                    Ok((who, status, b)) => {
                        if who.as_deref() != Some(me.as_str()) {
                            let said = crate::exporter::backend_text(&String::from_utf8_lossy(
                                &b[..b.len().min(200)],
                            ));
                            tracing::warn!(run = %id, peer = %addr, status, answer = %said, "runs: a peer did not take this replica's part; trying the next");
                        }
                        if status == 503 {
                            last.insert(addr.clone());
                        }
                    }
                    Err(e) if !e.maybe_reached => {
                        last.insert(addr.clone());
                    }
                    Err(e) => {
                        last.insert(addr.clone());
                        tracing::warn!(run = %id, peer = %addr, error = %e.why, "runs: handing a part over may have failed; not sent elsewhere (it could be counted twice)");
                        outcome = "this replica's part of the run may have been taken over or lost; if lost, answers name this replica";
                        break;
                    }
                }
            }
            if outcome.is_empty() {
                handed += 1;
                let mut h = self.handed.lock();
                if h.len() >= EVICTED_KEPT {
                    h.pop_front();
                }
                h.push_back(id);
            } else {
                tracing::warn!(run = %id, "runs: {outcome}");
            }
        }
        tracing::info!(handed, "runs: parts handed to peers at stop");
        handed
    }

    /// Whether `max_runs` made this replica forget run `id` (its part is lost).
    pub fn was_evicted(&self, id: &str) -> bool {
        self.evicted.lock().iter().any(|e| e == id)
    }

    /// Opens a run a peer forwarded (its `run-start`, carrying `origin`). The same run again
    /// (same origin: a retry, or one replica named twice in the caller's peers) is answered
    /// with it. A different run-start racing for the same id while it is open is resolved by
    /// origin: the smaller one replaces this one (which then never answered its caller `201`),
    /// a larger one is refused. Any other id taken is a conflict, as in [`Registry::start`].
    /// Decided under the registry's lock, so two forwarded calls at once cannot both open.
    ///
    /// # Errors
    /// As [`Registry::start`].
    pub fn accept_peer_start(&self, req: StartRequest) -> Result<Summary, RunsError> {
        self.open_run(req, true)
    }

    /// Adds `holders` to the [`Summary::holders`] of each run of `ids` held here
    /// ([`Holder::union`]: never removes one). Returns how many of `ids` are held here.
    /// Saved at once (with a directory) when anything changed: a replica stopped right after
    /// keeps the record.
    pub fn add_holders(&self, ids: &[String], holders: &[Holder]) -> usize {
        let (mut held, mut changed) = (0, false);
        {
            let mut runs = self.runs.lock();
            for id in ids {
                if let Some(e) = runs.get_mut(id) {
                    held += 1;
                    if Holder::union(&mut e.summary.holders, holders) {
                        e.dirty = true;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.flush();
        }
        held
    }

    /// Forgets run `id` if it is still the open run of run-start `origin` (a run-start that
    /// lost a race for its id; what it counted is dropped with it). Returns whether it did.
    pub fn withdraw(&self, id: &str, origin: &str) -> bool {
        let mut runs = self.runs.lock();
        let ours = runs.get(id).is_some_and(|e| {
            e.summary.state == RunState::Open && e.summary.origin.as_deref() == Some(origin)
        });
        if ours {
            runs.remove(id);
            if let Some(d) = &self.dir {
                persist::remove(d, id);
            }
            self.rebuild_open(&runs);
        }
        ours
    }

    /// Opens a run and returns its (empty) summary.
    ///
    /// # Errors
    /// [`RunsError::Invalid`] for a bad id or `max_duration`, [`RunsError::Conflict`] when
    /// the id is taken, [`RunsError::TooMany`] when `max_runs` runs are open.
    pub fn start(&self, req: StartRequest) -> Result<Summary, RunsError> {
        self.open_run(req, false)
    }

    /// [`Registry::start`] (`from_peer` false) and [`Registry::accept_peer_start`].
    fn open_run(&self, req: StartRequest, from_peer: bool) -> Result<Summary, RunsError> {
        let id = req.id.clone().unwrap_or_else(generate_id);
        valid_id(&id)?;
        let max = match &req.max_duration {
            Some(d) => crate::config::common::parse_duration(d)
                .map_err(|e| RunsError::Invalid(format!("max_duration: {e}")))?,
            None => self.cfg.max_duration.0,
        };
        if max.is_zero() {
            return Err(RunsError::Invalid("max_duration must be positive".into()));
        }
        limits::valid_map("labels", &req.labels, limits::MAX_LABELS)?;
        limits::valid_map("match", &req.matchers, limits::MAX_MATCH_KEYS)?;
        let counts = self.drop_counts();
        let mut runs = self.runs.lock();
        if self.stopping.load(Ordering::Relaxed) {
            // its parts were handed over already: a run opened now would be left behind
            return Err(RunsError::Stopping);
        }
        if let Some(e) = runs.get(&id) {
            let held = &e.summary;
            match (&req.origin, &held.origin) {
                (Some(new), Some(old)) if new == old => return Ok(self.view(e, counts)),
                (Some(new), Some(old))
                    if from_peer
                        && new < old
                        && held.state == RunState::Open
                        && held.source == RunSource::Api =>
                {
                    tracing::info!(run = %id, kept = %new, replaced = %old, "runs: two run-starts raced for one id; the earlier is kept");
                    runs.remove(&id);
                }
                _ => return Err(RunsError::Conflict(id)),
            }
        }
        self.make_room(&mut runs)?;
        let now = now_ms();
        const DAY_MS: u64 = 24 * 3600 * 1000;
        let expires = req
            .expires_unix_ms
            .filter(|&e| e > now)
            .unwrap_or(now + max.as_millis() as u64);
        let mut s = Summary::new(&id, RunSource::Api, expires);
        if let Some(t) = req.started_unix_ms.filter(|t| t.abs_diff(now) < DAY_MS) {
            s.started_unix_ms = t;
        }
        s.labels = req.labels;
        s.matchers = req.matchers;
        // a run the tier forwards (its start time set) that a run-end already reached here
        let ended_at = req.started_unix_ms.and_then(|started| {
            self.ended_unknown
                .lock()
                .iter()
                .rev()
                .find(|(i, at)| *i == id && *at >= started)
                .map(|(_, at)| *at)
        });
        s.origin = req.origin;
        let mut entry = Entry {
            summary: s,
            drop_base: Some(counts),
            dirty: true,
            ending: false,
        };
        if let Some(at) = ended_at {
            tracing::info!(run = %id, "runs: a run-end reached this replica before the run did; opened as ended");
            Self::freeze(&mut entry, counts, RunState::Ended, at);
        }
        let view = self.view(&entry, counts);
        runs.insert(id.clone(), entry);
        self.rebuild_open(&runs);
        tracing::info!(run = %id, "run started");
        Ok(view)
    }

    /// Catches up with the tier at start-up (before the replica reports ready): opens the
    /// API runs that peers have open and this replica does not know, and ends runs reloaded
    /// as open that every peer knowing them has ended. Returns the runs opened and the peers
    /// that did not answer (logged; a first replica has nobody to ask).
    pub async fn learn_from_peers(&self) -> (usize, Vec<String>) {
        let Some(peers) = &self.peers else {
            return (0, Vec::new());
        };
        let path = format!(
            "/runs?{}",
            PageRequest {
                limit: MAX_PAGE,
                ..Default::default()
            }
            .query()
        );
        let mut lists = Vec::new();
        let mut missing = Vec::new();
        // a peer keeps at most its max_runs runs; when that is more than one page, the rest
        // is read page by page (bounded: a peer that keeps answering with a next page stops
        // being followed after the pages this replica's own max_runs would fill, plus one)
        let max_pages = self.cfg.max_runs / MAX_PAGE + 2;
        for (addr, reply) in peers
            .fan_out(reqwest::Method::GET, &path, None, Duration::ZERO)
            .await
        {
            let mut reply = reply;
            let mut runs = Vec::new();
            let mut pages = 0;
            let complete = loop {
                pages += 1;
                // only a replica's answer (not a server that answers anything with 200)
                let crate::runs::peers::Reply::Answer(200, b, Some(_)) = reply else {
                    break false;
                };
                let Ok(p) = serde_json::from_slice::<Page>(&b) else {
                    break false;
                };
                runs.extend(p.runs);
                let Some(token) = p.next_page_token.filter(|_| pages < max_pages) else {
                    break true;
                };
                // re-written from its parsed form: a peer's text never reaches the URL as is
                let Some(after) = parse_token(&token) else {
                    break false;
                };
                let next = format!(
                    "/runs?{}",
                    PageRequest {
                        limit: MAX_PAGE,
                        after: Some(after),
                        ..Default::default()
                    }
                    .query()
                );
                reply = peers
                    .call(&addr, reqwest::Method::GET, &next, Duration::ZERO)
                    .await;
            };
            if complete {
                lists.push(runs);
            } else {
                missing.push(addr);
            }
        }
        let mut opened = Vec::new();
        let mut ended = Vec::new();
        let known: BTreeMap<String, RunState> = self
            .runs
            .lock()
            .values()
            .map(|e| (e.summary.id.clone(), e.summary.state))
            .collect();
        for info in crate::runs::replicas::merge_infos(lists) {
            match known.get(&info.id) {
                None if info.state == RunState::Open && info.source == RunSource::Api => {
                    let req = StartRequest {
                        id: Some(info.id.clone()),
                        labels: info.labels,
                        matchers: info.matchers,
                        max_duration: None,
                        started_unix_ms: Some(info.started_unix_ms),
                        expires_unix_ms: Some(info.expires_unix_ms),
                        origin: info.origin,
                    };
                    match self.start(req) {
                        Ok(_) => {
                            opened.push(info.id.clone());
                            if let Some(e) = self.runs.lock().get_mut(&info.id) {
                                e.summary.late_joins = vec![now_ms()];
                                // saved with the part, so a restart keeps the note
                                e.dirty = true;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(run = %info.id, error = %e, "cannot open a peer's run")
                        }
                    }
                }
                Some(RunState::Open) if info.state != RunState::Open => {
                    ended.push((info.id, info.state, info.ended_unix_ms))
                }
                _ => {}
            }
        }
        if !ended.is_empty() {
            let counts = self.drop_counts();
            let mut runs = self.runs.lock();
            // the tier's end: the peers' state and end time, not this replica's clock
            for (id, state, at) in &ended {
                if let Some(e) = runs.get_mut(id) {
                    Self::freeze(e, counts, *state, at.unwrap_or_else(now_ms));
                }
            }
            self.rebuild_open(&runs);
        }
        if !missing.is_empty() {
            tracing::warn!(peers = ?missing, "runs: peers did not answer at start-up");
        }
        if !opened.is_empty() {
            self.announce_holder(peers, &opened);
        }
        tracing::info!(
            opened = opened.len(),
            ended = ended.len(),
            "runs: caught up with peers"
        );
        (opened.len(), missing)
    }

    /// Records this replica as a holder of the runs `ids` it took up from its peers, here at
    /// once and on every peer (`POST /runs/-/holders`) in the background (readiness does not
    /// wait for a slow peer), so that if it is removed while they are open its part is named
    /// missing instead of vanishing from the counts. A peer that misses it still merges the
    /// record from the replicas that have it.
    fn announce_holder(&self, peers: &Arc<crate::runs::peers::Peers>, ids: &[String]) {
        let me = [Holder {
            replica: peers.self_id.clone(),
            address: peers.own_addresses().into_iter().next().unwrap_or_default(),
        }];
        self.add_holders(ids, &me);
        let body = serde_json::json!({ "runs": ids, "holders": me }).to_string();
        let peers = peers.clone();
        tokio::spawn(async move {
            for (addr, reply) in peers
                .fan_out(
                    reqwest::Method::POST,
                    "/runs/-/holders",
                    Some(body),
                    Duration::ZERO,
                )
                .await
            {
                if !matches!(
                    reply,
                    crate::runs::peers::Reply::Answer(200 | 404, _, Some(_))
                ) {
                    tracing::warn!(peer = %addr, "runs: a peer did not record this replica as a holder of the runs it took up");
                }
            }
        });
    }

    /// Ends a run: stamping stops at once; then waits (bounded) for the runsummary queue to
    /// drain so the summary includes what was accepted before the call. The run's
    /// `ended_unix_ms` is `at` (the moment the tier's `run-end` was called, passed on to the
    /// peers so every replica records the same end), or now.
    pub async fn end(&self, id: &str, at: Option<u64>) -> Result<Summary, RunsError> {
        let at = at.unwrap_or_else(now_ms);
        let counts = self.drop_counts();
        {
            let mut runs = self.runs.lock();
            let Some(e) = runs.get_mut(id) else {
                let mut t = self.ended_unknown.lock();
                if t.len() >= EVICTED_KEPT {
                    t.pop_front();
                }
                t.push_back((id.to_string(), at));
                return Err(RunsError::NotFound(id.into()));
            };
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
            Self::freeze(e, now, RunState::Ended, at);
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

    /// The current summary of run `id` (counts so far for an open run); `None` when unknown.
    pub fn get(&self, id: &str) -> Option<Summary> {
        let now = self.drop_counts();
        let runs = self.runs.lock();
        runs.get(id).map(|e| self.view(e, now))
    }

    /// Every run, newest first (see [`Registry::list_page`] for the API's pages).
    pub fn list(&self) -> Vec<RunInfo> {
        self.list_page(&PageRequest {
            limit: usize::MAX,
            ..Default::default()
        })
        .runs
    }

    /// One page of runs, newest first (ordered by [`RunInfo::order_key`]).
    pub fn list_page(&self, req: &PageRequest) -> Page {
        let runs = self.runs.lock();
        let out: Vec<RunInfo> = runs
            .values()
            .filter(|e| req.state.is_none_or(|st| e.summary.state == st))
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
                    expires_unix_ms: s.expires_unix_ms,
                    origin: s.origin.clone(),
                }
            })
            .collect();
        drop(runs);
        paginate(out, req)
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
        let mut opened = 0usize;
        for (id, r) in items {
            if !runs.contains_key(&id) {
                if opened >= self.cfg.max_new_runs_per_request {
                    self.refused_new_runs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if valid_id(&id).is_err() || self.make_room(&mut runs).is_err() {
                    continue;
                }
                opened += 1;
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
                    // every replica holds the same expiry, so they agree on the end
                    let at = e.summary.expires_unix_ms;
                    Self::freeze(e, counts, RunState::Expired, at);
                    changed = true;
                }
            }
            if changed {
                self.rebuild_open(&runs);
            }
        }
    }

    /// The save at a clean stop (after the queues drained): every changed summary, then the
    /// mark that tells the next start nothing accepted was lost (only if every save worked).
    pub fn flush_at_stop(&self) {
        let Some(dir) = &self.dir else { return };
        if self.flush()
            && let Err(e) = persist::mark_clean_stop(dir)
        {
            tracing::warn!(error = %e, "cannot mark the run summaries as saved at a clean stop");
        }
    }

    /// Saves every changed summary (no-op without a directory); false if a save failed.
    pub fn flush(&self) -> bool {
        let Some(dir) = &self.dir else { return true };
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
        let mut all = true;
        for s in dirty {
            if let Err(e) = persist::save(dir, &s) {
                tracing::warn!(run = %s.id, error = %e, "cannot save run summary");
                all = false;
                if let Some(en) = self.runs.lock().get_mut(&s.id) {
                    en.dirty = true;
                }
            }
        }
        all
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
    async fn a_run_end_that_arrives_before_the_run_opens_it_ended() {
        let reg = Registry::new(RunsConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        let t = now_ms();
        // run-end reached this replica first (404), at the tier's time t
        assert!(matches!(
            reg.end("x", Some(t)).await,
            Err(RunsError::NotFound(_))
        ));
        // the run-start forwarded late (begun before t) opens it ended at t
        let late = StartRequest {
            id: Some("x".into()),
            started_unix_ms: Some(t - 10),
            origin: Some("o".into()),
            ..Default::default()
        };
        let s = reg
            .accept_peer_start(late)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.state, s.ended_unix_ms), (RunState::Ended, Some(t)));
        assert!(!reg.any_open());
        // a run-start of the same id begun after that end is a new run, open
        let reg2 = Registry::new(RunsConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        let _ = reg2.end("y", Some(t)).await;
        let s = reg2
            .accept_peer_start(StartRequest {
                id: Some("y".into()),
                started_unix_ms: Some(t + 10),
                origin: Some("o".into()),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.state, RunState::Open);
    }

    #[tokio::test]
    async fn a_part_handed_over_adds_once_and_keeps_this_parts_state() {
        // a peer nobody listens on: this replica hands its parts over at stop (none takes them)
        let cfg = RunsConfig {
            peers: vec!["127.0.0.1:1".into()],
            ..Default::default()
        };
        let reg = Registry::new(cfg, None).unwrap_or_else(|e| panic!("{e}"));
        start(&reg, "r", "qa", None);
        // another replica's part of the same run: 7 spans, ended there (it missed nothing
        // this replica did not)
        let mut other = Summary::new("r", RunSource::Api, now_ms() + 60_000);
        other.totals.spans = 7;
        other.services.entry("svc".into()).or_default().spans = 7;
        other.state = RunState::Ended;
        other.ended_unix_ms = Some(now_ms());
        other.absorbed = vec!["0b".into()];
        assert_eq!(reg.absorb(other.clone(), "0a").ok(), Some(true));
        assert_eq!(
            reg.absorb(other.clone(), "0a").ok(),
            Some(false),
            "taken twice"
        );
        let s = reg.get("r").unwrap_or_else(|| panic!("run r"));
        assert_eq!((s.totals.spans, s.state), (7, RunState::Open));
        assert_eq!(s.absorbed, ["0a", "0b"]);
        // a run this replica does not hold becomes its part
        let mut data = Summary::new("d", RunSource::Attribute, now_ms() + 60_000);
        data.totals.spans = 3;
        assert_eq!(reg.absorb(data, "0a").ok(), Some(true));
        assert_eq!(reg.get("d").map(|s| s.totals.spans), Some(3));
        // once it hands its own parts over, it takes no other replica's
        let soon = tokio::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(reg.hand_off(soon).await, 0, "nobody took the parts");
        assert!(reg.get("r").is_none() && !reg.was_handed("r"));
        assert!(matches!(reg.absorb(other, "0c"), Err(RunsError::Stopping)));
        // nor a run-start a peer forwards: that run would be left behind too
        let late = StartRequest {
            id: Some("late".into()),
            origin: Some("o".into()),
            ..Default::default()
        };
        assert!(matches!(
            reg.accept_peer_start(late),
            Err(RunsError::Stopping)
        ));
    }

    /// A peer that takes a call and never answers (frozen) costs one part at most: the parts
    /// after it go to the next peer first, instead of each waiting out `peer_timeout` there.
    #[tokio::test]
    async fn a_frozen_peer_is_tried_last_for_the_parts_after() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bind = || async {
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"))
        };
        let mut ls = [bind().await, bind().await];
        let addr = |l: &tokio::net::TcpListener| {
            l.local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        ls.sort_by_key(|l| addr(l));
        let cfg = RunsConfig {
            peers: ls.iter().map(addr).collect(),
            peer_timeout: crate::config::common::Dur(Duration::from_millis(300)),
            ..Default::default()
        };
        let reg = Registry::new(cfg, None).unwrap_or_else(|e| panic!("{e}"));
        let me = reg
            .peers
            .as_ref()
            .map(|p| p.self_id.clone())
            .unwrap_or_default();
        // the peer this replica tries first is the frozen one
        let [a, b] = ls;
        let (frozen, good) = if first_try(&me, 2) == 0 {
            (a, b)
        } else {
            (b, a)
        };
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = frozen.accept().await {
                held.push(c);
            }
        });
        let taken = Arc::new(AtomicUsize::new(0));
        let t = taken.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = good.accept().await {
                let t = t.clone();
                tokio::spawn(async move {
                    // the request whole (head, then content-length bytes), then 200 from a replica
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = c.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    t.fetch_add(1, Ordering::Relaxed);
                    let answer = "HTTP/1.1 200 OK\r\nx-watchtower-replica: 00ff\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = c.write_all(answer.as_bytes()).await;
                });
            }
        });
        for id in ["p1", "p2", "p3"] {
            start(&reg, id, "qa", None);
        }
        let handed = reg
            .hand_off(tokio::time::Instant::now() + Duration::from_secs(10))
            .await;
        // the first part went to the frozen peer (maybe taken there: not sent elsewhere); the
        // others to the one that answers
        assert_eq!((handed, taken.load(Ordering::Relaxed)), (2, 2));
    }

    #[test]
    fn one_run_start_forwarded_twice_at_once_opens_once_and_answers_both() {
        // one replica named twice in the caller's peers gets the same forwarded start twice,
        // at the same moment: both are answered with the run (neither is a conflict)
        let reg = Registry::new(RunsConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..50 {
            let req = StartRequest {
                id: Some(format!("dup-{i}")),
                started_unix_ms: Some(now_ms()),
                origin: Some(format!("{i:015}-a")),
                ..Default::default()
            };
            let (a, b) = std::thread::scope(|s| {
                let a = s.spawn(|| reg.accept_peer_start(req.clone()));
                let b = s.spawn(|| reg.accept_peer_start(req.clone()));
                (a.join(), b.join())
            });
            for r in [a, b] {
                assert!(matches!(r, Ok(Ok(_))), "dup-{i}: {r:?}");
            }
        }
    }

    #[test]
    fn forgotten_runs_are_remembered_across_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = RunsConfig {
            directory: Some(dir.path().display().to_string()),
            max_runs: 1,
            ..Default::default()
        };
        let reg = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        start(&reg, "old", "qa", Some("1ms"));
        std::thread::sleep(Duration::from_millis(5));
        reg.expire();
        start(&reg, "new", "qa", None);
        assert!(reg.was_evicted("old"));
        drop(reg);
        let again = Registry::new(cfg, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.was_evicted("old") && !again.was_evicted("new"));
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
        // a clean stop lost nothing: the reloaded part is not marked late (the mark is used
        // up by that start)
        reg.flush_at_stop();
        // each "restart" lets go of the directory first, as a stopped process does
        drop(reg);
        let clean = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(clean.get("a").map(|s| s.late_joins.len()), Some(0));
        drop(clean);
        // reload after a crash (no mark): `a` is still open with its counts, its part marked
        // as resumed late
        let again = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.any_open());
        assert_eq!(
            again.get("a").map(|s| (s.state, s.totals.spans)),
            Some((RunState::Open, 3))
        );
        assert_eq!(again.get("a").map(|s| s.late_joins.len()), Some(1));
        // the note is saved: a clean restart after the crash keeps it, adding none
        again.flush_at_stop();
        drop(again);
        let kept = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.get("a").map(|s| s.late_joins.len()), Some(1));
        drop(kept);
        // a second crash adds its own
        let again = Registry::new(cfg.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.get("a").map(|s| s.late_joins.len()), Some(2));
        let ended = again.end("a", None).await.map(|s| s.state);
        assert_eq!(ended, Ok(RunState::Ended));
        assert!(!again.any_open());
        let untouched = again
            .stamp(spans("qa", None, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.ingest(&untouched).is_ok());
        assert_eq!(again.get("a").map(|s| s.totals.spans), Some(3));
        assert!(matches!(
            again.end("nope", None).await,
            Err(RunsError::NotFound(_))
        ));
    }

    fn spans_of_runs(ids: &[String]) -> Payload {
        let req = ExportTraceServiceRequest {
            resource_spans: ids
                .iter()
                .map(|id| {
                    let ResourceSpans {
                        resource,
                        scope_spans,
                        ..
                    } = ExportTraceServiceRequest::decode(spans("x", Some(id), 1).bytes)
                        .unwrap_or_default()
                        .resource_spans
                        .remove(0);
                    ResourceSpans {
                        resource,
                        scope_spans,
                        ..Default::default()
                    }
                })
                .collect(),
        };
        Payload::new(Signal::Traces, req.encode_to_vec().into(), ids.len() as u64)
    }

    #[test]
    fn data_opens_at_most_the_configured_runs_per_request() {
        let reg = Registry::new(
            RunsConfig {
                max_new_runs_per_request: 3,
                ..Default::default()
            },
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<String> = (0..100).map(|i| format!("data-{i}")).collect();
        assert!(reg.ingest(&spans_of_runs(&ids)).is_ok());
        assert_eq!(reg.list().len(), 3, "one request opens at most 3 runs");
        assert_eq!(reg.refused_new_runs(), 97);
        // known runs keep being summarized; the next request may open 3 more
        assert!(reg.ingest(&spans_of_runs(&ids)).is_ok());
        assert_eq!(reg.list().len(), 6);
        assert_eq!(reg.get("data-0").map(|s| s.totals.spans), Some(2));
    }

    #[test]
    fn start_refuses_oversized_labels_filters_and_ids() {
        let reg = Registry::new(RunsConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        let big = |n: usize, len: usize| -> BTreeMap<String, String> {
            (0..n).map(|i| (format!("k{i}"), "v".repeat(len))).collect()
        };
        for req in [
            StartRequest {
                labels: big(100, 10),
                ..Default::default()
            },
            StartRequest {
                labels: big(1, 2_000_000),
                ..Default::default()
            },
            StartRequest {
                matchers: big(1000, 1),
                ..Default::default()
            },
            StartRequest {
                id: Some("x".repeat(200)),
                ..Default::default()
            },
            StartRequest {
                id: Some("a\u{202E}b".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(reg.start(req), Err(RunsError::Invalid(_))),
                "must be refused"
            );
        }
        assert!(reg.list().is_empty());
        assert!(
            reg.start(StartRequest {
                labels: big(limits::MAX_LABELS, limits::MAX_VALUE_BYTES),
                matchers: big(limits::MAX_MATCH_KEYS, 8),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn list_pages_cover_every_run_once_newest_first() {
        let reg = Registry::new(RunsConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..25 {
            start(&reg, &format!("r{i:02}"), "qa", None);
        }
        let mut seen = Vec::new();
        let mut q = BTreeMap::from([("limit".to_string(), "10".to_string())]);
        let mut pages = 0;
        loop {
            let p = reg.list_page(&PageRequest::parse(&q).unwrap_or_else(|e| panic!("{e}")));
            assert!(p.runs.len() <= 10);
            seen.extend(p.runs.iter().map(|r| r.id.clone()));
            pages += 1;
            match p.next_page_token {
                Some(t) => q.insert("page_token".into(), t),
                None => break,
            };
        }
        assert_eq!(pages, 3);
        let all: Vec<String> = reg.list().into_iter().map(|r| r.id).collect();
        assert_eq!(
            seen, all,
            "pages are the full list, in order, without repeats"
        );
        assert_eq!(all.len(), 25);
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("page_token", "zz"),
            ("state", "x"),
            ("nope", "1"),
        ] {
            let q = BTreeMap::from([(bad.0.to_string(), bad.1.to_string())]);
            assert!(PageRequest::parse(&q).is_err(), "{bad:?}");
        }
        let open = PageRequest::parse(&BTreeMap::from([(
            "state".to_string(),
            "ended".to_string(),
        )]));
        assert_eq!(open.map(|p| reg.list_page(&p).runs.len()), Ok(0));
    }
}
