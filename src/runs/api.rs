//! The runs control API, served on the health_check endpoint:
//! `POST /runs`, `POST /runs/{id}/end`, `GET /runs` (paginated), `GET /runs/{id}` (JSON; see
//! docs/runs.md). Request bodies are capped at [`MAX_START_BODY_BYTES`] (413 beyond).
//!
//! With `peers` configured (several replicas as one tier, docs/replicas.md) every call is
//! also sent to the peers ([`crate::runs::peers`]) and the answers are merged
//! ([`crate::runs::replicas`]): a run is opened on every reachable replica before `POST /runs`
//! answers, and reads merge every replica's part. Answers say `"partial": true` and list
//! `missing_replicas` when a peer did not answer. A call carrying the forwarded header is
//! answered from this replica's own state.

use crate::runs::client::path_id;
use crate::runs::limits::MAX_START_BODY_BYTES;
use crate::runs::peers::{FORWARDED, REPLICA, Reply};
use crate::runs::registry::{Page, PageRequest, StartRequest, paginate};
use crate::runs::replicas::{merge_infos, merge_summaries};
use crate::runs::summary::{Holder, MAX_HOLDERS, RunInfo, RunSource, RunState, Summary, now_ms};
use crate::runs::{Registry, RunsError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn json(code: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn status_of(e: &RunsError) -> StatusCode {
    match e {
        RunsError::NotFound(_) => StatusCode::NOT_FOUND,
        RunsError::Conflict(_) => StatusCode::CONFLICT,
        RunsError::Invalid(_) => StatusCode::BAD_REQUEST,
        RunsError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        RunsError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `409` for run `id`, naming the replicas that hold it, with `why` after.
fn conflict<'a>(id: &str, on: impl Iterator<Item = &'a str>, why: &str) -> Response {
    let on: Vec<&str> = on.collect();
    json(
        StatusCode::CONFLICT,
        &serde_json::json!({
            "error": format!("{} (held by replicas {}){why}", RunsError::Conflict(id.into()), on.join(", ")),
        }),
    )
}

fn error(e: RunsError) -> Response {
    json(
        status_of(&e),
        &serde_json::json!({ "error": e.to_string() }),
    )
}

/// An error that also names the replicas that did not answer. A run found on no replica
/// that answered, while some did not, is `503`: it may be on those, so "not found" would be a
/// guess (a CD script can tell it from a `404`, an id no replica has).
fn error_partial(e: RunsError, missing: Vec<String>) -> Response {
    let status = match e {
        RunsError::NotFound(_) if !missing.is_empty() => StatusCode::SERVICE_UNAVAILABLE,
        _ => status_of(&e),
    };
    json(
        status,
        &serde_json::json!({
            "error": e.to_string(),
            "partial": !missing.is_empty(),
            "missing_replicas": missing,
        }),
    )
}

/// Whether a call was forwarded by a peer (answer locally, no fan-out).
fn forwarded(h: &HeaderMap) -> bool {
    h.contains_key(FORWARDED)
}

/// The peers' replies to one call, sorted by [`fan_out`].
struct Fanned<T> {
    /// answers with a status in `ok`, decoded, with the peer's address
    found: Vec<(String, T)>,
    /// the replica id of each found answer, by the peer's address
    ids: BTreeMap<String, String>,
    /// peers that did not answer from a replica's runs API as asked (sorted addresses)
    missing: Vec<String>,
    /// replicas that answered with a status in `absent` (they do not hold it), with their
    /// answer's body
    absent: Vec<(String, Bytes)>,
}

/// Fans a call out to the peers (none when not configured or forwarded) and sorts the
/// replies ([`Fanned`]). Only answers that come from a replica's runs API (they carry its
/// id) count as found or absent; every other reply (unreachable, timed out, refused, e.g.
/// `401` from a peer that does not accept our credential, a server that is not a replica
/// whatever it answers, or unreadable) makes its peer missing. Missing peers are logged with
/// the reason.
async fn fan_out<T: serde::de::DeserializeOwned>(
    reg: &Registry,
    h: &HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
    extra: Duration,
    (ok, absent_codes): (&[u16], &[u16]),
) -> Fanned<T> {
    let (mut found, mut missing, mut absent) = (Vec::new(), Vec::new(), Vec::new());
    let mut ids = BTreeMap::new();
    let Some(peers) = reg.peers.as_ref().filter(|_| !forwarded(h)) else {
        return Fanned {
            found,
            ids,
            missing,
            absent,
        };
    };
    for (addr, reply) in peers.fan_out(method, path, body, extra).await {
        match reply {
            Reply::Answer(status, b, Some(id)) if ok.contains(&status) => {
                match serde_json::from_slice::<T>(&b) {
                    Ok(v) => {
                        ids.insert(addr.clone(), id);
                        found.push((addr, v))
                    }
                    Err(e) => {
                        tracing::warn!(peer = %addr, error = %e, "runs: unreadable peer answer");
                        missing.push(addr);
                    }
                }
            }
            Reply::Answer(status, b, Some(_)) if absent_codes.contains(&status) => {
                absent.push((addr, b))
            }
            Reply::Answer(status, _, None) => {
                tracing::warn!(peer = %addr, status, "runs: a peer address answered, but not from a replica's runs API (a wrong port?)");
                missing.push(addr);
            }
            Reply::Answer(status, b, _) => {
                // a peer's text, escaped and cut (it may be any server's)
                let said =
                    crate::exporter::backend_text(&String::from_utf8_lossy(&b[..b.len().min(200)]));
                tracing::warn!(peer = %addr, status, answer = %said, "runs: peer refused the call");
                missing.push(addr);
            }
            Reply::Missing(e) => {
                tracing::warn!(peer = %addr, error = %e, "runs: peer did not answer");
                missing.push(addr);
            }
        }
    }
    missing.sort();
    Fanned {
        found,
        ids,
        missing,
        absent,
    }
}

/// What a replica says when it does not hold a run (the `404` of a forwarded call).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Absent {
    /// when the replica's process started (ms since the Unix epoch)
    #[serde(default)]
    replica_started_unix_ms: u64,
    /// it held a part and `max_runs` made it forget it
    #[serde(default)]
    evicted: bool,
    /// it handed its part to a peer as it stopped: the peer's part includes it
    #[serde(default)]
    handed_off: bool,
}

/// The `404` for run `id`: with peers, also when this replica started and whether it
/// forgot the run, so the replica merging answers can tell a part lost from no part.
fn not_found(reg: &Registry, id: &str) -> Response {
    let e = RunsError::NotFound(id.into());
    let evicted = reg.was_evicted(id);
    let message = if evicted {
        format!("{e} (this replica forgot it: max_runs runs were kept)")
    } else {
        e.to_string()
    };
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "error": message,
            "replica_started_unix_ms": reg.started_unix_ms,
            "evicted": evicted,
            "handed_off": reg.was_handed(id),
        }),
    )
}

/// The replicas that do not hold run `id`, each with what it said: the peers that answered
/// so (their `404` bodies), and this replica when it does not hold it either.
fn absentees(reg: &Registry, id: &str, absent: Vec<(String, Bytes)>) -> Vec<(String, Absent)> {
    let mut out: Vec<(String, Absent)> = absent
        .into_iter()
        .map(|(addr, body)| (addr, serde_json::from_slice(&body).unwrap_or_default()))
        .collect();
    if reg.get(id).is_none() {
        out.push((
            "this replica".into(),
            Absent {
                replica_started_unix_ms: reg.started_unix_ms,
                evicted: reg.was_evicted(id),
                handed_off: reg.was_handed(id),
            },
        ));
    }
    out
}

/// Whether a replica that does not hold `run` (`None`: no replica holds it) lost its part,
/// rather than never having one or handing it to a peer as it stopped: it forgot the run (`max_runs`), or, for a run begun by
/// `run-start` (which every replica receives), it was up before the run ended (it refused the
/// start, `max_runs` open runs, or lost it in a restart without a directory). A replica that
/// started after the run ended never had a part; a run opened by `test.run.id` data has parts
/// only where such data arrived.
fn part_lost(run: Option<&Summary>, a: &Absent) -> bool {
    if a.handed_off {
        return false;
    }
    a.evicted
        || run.is_some_and(|r| {
            r.source == RunSource::Api
                && r.ended_unix_ms
                    .is_none_or(|end| a.replica_started_unix_ms < end)
        })
}

/// Adds the replicas among `absentees` whose part of run `id` is lost ([`part_lost`]) to
/// `missing`.
fn add_lost(
    id: &str,
    run: Option<&Summary>,
    absentees: Vec<(String, Absent)>,
    missing: &mut Vec<String>,
) {
    for (addr, _) in absentees.iter().filter(|(_, a)| part_lost(run, a)) {
        tracing::warn!(run = %id, replica = %addr, "runs: a replica does not hold its part of the run");
        missing.push(addr.clone());
    }
    missing.sort();
    missing.dedup();
}

/// Takes out of `missing` the peers that do not answer but whose part of `run` a peer took
/// over when they stopped (a static peers list keeps a stopped replica's address): the
/// replica this one last saw answer from that address is in [`Summary::absorbed`], or every
/// holder recorded at that address is.
fn excuse_handed_over(reg: &Registry, run: &Summary, missing: &mut Vec<String>) {
    if run.absorbed.is_empty() {
        return;
    }
    missing.retain(|addr| {
        // the replica that last answered from there, as this replica saw it
        let last = reg.peers.as_ref().and_then(|p| p.id_at(addr));
        if last.is_some_and(|id| run.absorbed.contains(&id)) {
            return false;
        }
        let mut at = run.holders.iter().filter(|h| &h.address == addr).peekable();
        at.peek().is_none() || !at.all(|h| run.absorbed.contains(&h.replica))
    });
}

/// Adds to `missing` the holders of `run` ([`Summary::holders`]) whose part is neither among
/// the merged ones (`present`) nor absorbed into one ([`Summary::absorbed`]), each named by
/// its address, or by its id when that is unknown: removed while the run was open, or
/// restarted without its part (a crash, or a hand-over no peer took; a restart in place
/// comes back with a new id and a part that begins then).
///
/// While peers did not answer, as many gone holders as there are such peers may be those same
/// replicas under other names (a peers list can spell an address differently): the answer is
/// `partial` already, and only holders beyond that count are added.
fn add_gone_holders(id: &str, run: &Summary, present: &[Holder], missing: &mut Vec<String>) {
    let gone: Vec<&Holder> = run
        .holders
        .iter()
        .filter(|h| {
            !run.absorbed.contains(&h.replica) && !present.iter().any(|p| p.replica == h.replica)
        })
        .collect();
    if gone.len() <= missing.len() {
        return;
    }
    for h in gone {
        let name = if h.address.is_empty() {
            format!("replica {}", h.replica)
        } else {
            h.address.clone()
        };
        if !missing.contains(&name) {
            tracing::warn!(run = %id, replica = %name, "runs: a replica that held a part of the run no longer has it (removed, or restarted without a directory after the run ended)");
            missing.push(name);
        }
    }
    missing.sort();
    missing.dedup();
}

/// The parts to merge (this replica's, then the peers' found at the addresses of `ids`),
/// without those of replicas that another part lists in [`Summary::absorbed`]: a read that
/// met a replica before it handed its part over, and the peer that took it after, would
/// otherwise count that part twice.
fn without_absorbed(
    reg: &Registry,
    ids: &BTreeMap<String, String>,
    local: Option<Summary>,
    found: Vec<(String, Summary)>,
) -> Vec<Summary> {
    let own = reg.peers.as_ref().map(|p| p.self_id.clone());
    let parts: Vec<(Option<String>, Summary)> = local
        .map(|s| (own, s))
        .into_iter()
        .chain(found.into_iter().map(|(a, s)| (ids.get(&a).cloned(), s)))
        .collect();
    let absorbed: std::collections::BTreeSet<String> = parts
        .iter()
        .flat_map(|(_, s)| s.absorbed.iter().cloned())
        .collect();
    parts
        .into_iter()
        .filter(|(id, _)| !id.as_ref().is_some_and(|i| absorbed.contains(i)))
        .map(|(_, s)| s)
        .collect()
}

/// The parts merged, as holders: each answering peer's replica id and address, and this
/// replica's own when it holds a part (its address when its peers list names it).
fn present(reg: &Registry, ids: &BTreeMap<String, String>, local: bool) -> Vec<Holder> {
    let mut out: Vec<Holder> = ids
        .iter()
        .map(|(addr, id)| Holder {
            replica: id.clone(),
            address: addr.clone(),
        })
        .collect();
    if local && let Some(p) = &reg.peers {
        out.push(Holder {
            replica: p.self_id.clone(),
            address: p.own_addresses().into_iter().next().unwrap_or_default(),
        });
    }
    let mut set = Vec::new();
    Holder::union(&mut set, &out);
    set
}

/// Ends run `id` on this replica in a task of its own, so that a caller that goes away (a
/// peer whose call timed out, a CLI interrupted) cannot leave the run half-ended.
async fn end_detached(reg: &Arc<Registry>, id: &str, at: Option<u64>) -> Result<Summary, Response> {
    let (reg, id) = (reg.clone(), id.to_string());
    match tokio::spawn(async move { reg.end(&id, at).await }).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(error(e)),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
    }
}

/// Ends run `id` at `at` on the peers at `addrs` in the background: a replica that did not
/// answer `run-end` (frozen, restarting, partitioned) would otherwise keep the run open and
/// stamp its data until the run expires. Each is retried with a growing pause (1 s doubling
/// to 30 s) until it answers from its runs API or `until` (the run's expiry, ms) passes.
fn end_later(reg: &Arc<Registry>, id: &str, at: u64, addrs: Vec<String>, until: u64) {
    let Some(peers) = reg.peers.clone() else {
        return;
    };
    let extra = reg.end_drain_timeout();
    let path = format!("/runs/{}/end?ended_unix_ms={at}", path_id(id));
    for addr in addrs
        .into_iter()
        .filter(|a| !a.starts_with("dns+") && !a.starts_with("dnssrv+"))
    {
        let (peers, path, id) = (peers.clone(), path.clone(), id.to_string());
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            while now_ms() < until {
                match peers.call(&addr, reqwest::Method::POST, &path, extra).await {
                    Reply::Answer(200 | 404, _, Some(_)) => {
                        tracing::info!(run = %id, peer = %addr, "runs: run ended on a replica that missed run-end");
                        return;
                    }
                    _ => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}

/// Read repair: when the merged run is ended (an explicit end reaches the whole tier) and a
/// part is still open, that replica missed `run-end`; it is ended now with the tier's time,
/// here (`local_open`) or on the peers at `open_peers`, in the background.
fn repair_end(reg: &Arc<Registry>, merged: &Summary, local_open: bool, open_peers: Vec<String>) {
    let (RunState::Ended, Some(at)) = (merged.state, merged.ended_unix_ms) else {
        return;
    };
    if local_open {
        let (r, id) = (reg.clone(), merged.id.clone());
        tokio::spawn(async move {
            let _ = r.end(&id, Some(at)).await;
        });
    }
    if !open_peers.is_empty() {
        end_later(reg, &merged.id, at, open_peers, merged.expires_unix_ms);
    }
}

fn mark(mut s: Summary, missing: Vec<String>) -> Summary {
    s.partial = !missing.is_empty();
    s.missing_replicas = missing;
    s
}

async fn start(State(reg): State<Arc<Registry>>, h: HeaderMap, body: Bytes) -> Response {
    let mut req: StartRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        StartRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(RunsError::Invalid(format!("invalid JSON: {e}"))),
        }
    };
    if forwarded(&h) {
        return match reg.accept_peer_start(req) {
            Ok(s) => json(StatusCode::CREATED, &s),
            Err(e) => error(e),
        };
    }
    if reg.peers.is_none() {
        return match reg.start(req) {
            Ok(s) => json(StatusCode::CREATED, &s),
            Err(e) => error(e),
        };
    }
    // the id, start and expiry are decided here, so every replica holds the same run
    let id = req
        .id
        .get_or_insert_with(crate::runs::registry::generate_id)
        .clone();
    // an id a peer already holds (an API run, or one opened by `test.run.id` data) is taken
    // on the tier, as it is on one replica
    if reg.get(&id).is_none() {
        let held = fan_out::<serde_json::Value>(
            &reg,
            &h,
            reqwest::Method::GET,
            &format!("/runs/{}", path_id(&id)),
            None,
            Duration::ZERO,
            (&[200], &[404]),
        )
        .await;
        if !held.found.is_empty() {
            return conflict(&id, held.found.iter().map(|(a, _)| a.as_str()), "");
        }
    }
    let started = now_ms();
    req.started_unix_ms = Some(started);
    // orders this run-start against another one racing for the same id on another replica
    req.origin = Some(format!(
        "{started:015}-{}",
        reg.peers.as_ref().map(|p| p.self_id.as_str()).unwrap_or("")
    ));
    let local = match reg.start(req.clone()) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    req.expires_unix_ms = Some(local.expires_unix_ms);
    let body = serde_json::to_string(&req).unwrap_or_default();
    // `201`: the peer holds this run (opened now, or already by a retry). `409`: the peer
    // holds another run with this id (a run-start racing on another replica that came first,
    // whose run the tier keeps, or data's `test.run.id`): this run-start lost
    let sent = fan_out::<serde_json::Value>(
        &reg,
        &h,
        reqwest::Method::POST,
        "/runs",
        Some(body),
        Duration::ZERO,
        (&[201], &[409]),
    )
    .await;
    if !sent.absent.is_empty() {
        // not kept here either (unless the other run-start's run has replaced it already)
        if let Some(origin) = &req.origin {
            reg.withdraw(&id, origin);
        }
        tracing::warn!(run = %id, "runs: another run with this id exists on peers; run-start refused");
        return conflict(
            &id,
            sent.absent.iter().map(|(a, _)| a.as_str()),
            ": another run-start with this id reached the tier at the same time",
        );
    }
    // who took the run is recorded on every replica, so a replica removed while it is open
    // (a scale-down, a pod replaced) is named missing instead of vanishing from the counts
    let mut local = local;
    let members = present(&reg, &sent.ids, true);
    record_holders(&reg, &h, std::slice::from_ref(&id), &members).await;
    Holder::union(&mut local.holders, &members);
    json(StatusCode::CREATED, &mark(local, sent.missing))
}

/// Local part and peers' parts of one run, merged (and repaired: see [`repair_end`]).
async fn gather(reg: &Arc<Registry>, h: &HeaderMap, id: &str, local: Option<Summary>) -> Response {
    let path = format!("/runs/{}", path_id(id));
    let Fanned {
        found,
        ids,
        mut missing,
        absent,
    } = fan_out::<Summary>(
        reg,
        h,
        reqwest::Method::GET,
        &path,
        None,
        Duration::ZERO,
        (&[200], &[404]),
    )
    .await;
    let open_peers: Vec<String> = found
        .iter()
        .filter(|(_, s)| s.state == RunState::Open)
        .map(|(a, _)| a.clone())
        .collect();
    let local_open = local.as_ref().is_some_and(|s| s.state == RunState::Open);
    let present = present(reg, &ids, local.is_some());
    let parts = without_absorbed(reg, &ids, local, found);
    match merge_summaries(parts, &reg.limits()) {
        Some(s) => {
            repair_end(reg, &s, local_open, open_peers);
            excuse_handed_over(reg, &s, &mut missing);
            add_lost(id, Some(&s), absentees(reg, id, absent), &mut missing);
            add_gone_holders(id, &s, &present, &mut missing);
            json(StatusCode::OK, &mark(s, missing))
        }
        None => {
            add_lost(id, None, absentees(reg, id, absent), &mut missing);
            error_partial(RunsError::NotFound(id.into()), missing)
        }
    }
}

/// `POST /runs/{id}/end`. A peer's forwarded call carries the tier's end time as
/// `?ended_unix_ms=`, so every replica records the moment `run-end` was called, whenever the
/// call reaches it.
async fn end(
    State(reg): State<Arc<Registry>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let at = match q.get("ended_unix_ms").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => {
            return error(RunsError::Invalid(
                "ended_unix_ms must be milliseconds since the Unix epoch".into(),
            ));
        }
    };
    if forwarded(&h) || reg.peers.is_none() {
        return match end_detached(&reg, &id, at).await {
            Ok(s) => json(StatusCode::OK, &s),
            Err(resp) if resp.status() == StatusCode::NOT_FOUND => not_found(&reg, &id),
            Err(resp) => resp,
        };
    }
    // end everywhere at once: each replica stops stamping, then drains its summary queue.
    // The tier's end time is now, or the time this replica recorded when an earlier run-end
    // ended it here, so a repeated run-end does not move it.
    let at = reg
        .get(&id)
        .and_then(|s| s.ended_unix_ms)
        .unwrap_or_else(now_ms);
    let extra = reg.end_drain_timeout();
    let (local, merged) = tokio::join!(end_detached(&reg, &id, Some(at)), async {
        fan_out::<Summary>(
            &reg,
            &h,
            reqwest::Method::POST,
            &format!("/runs/{}/end?ended_unix_ms={at}", path_id(&id)),
            None,
            extra,
            (&[200], &[404]),
        )
        .await
    });
    let Fanned {
        found,
        ids,
        mut missing,
        absent,
    } = merged;
    let local = match local {
        Ok(s) => Some(s),
        Err(resp) if resp.status() == StatusCode::NOT_FOUND => None,
        Err(resp) => return resp,
    };
    let parts = without_absorbed(&reg, &ids, local, found);
    let present = present(&reg, &ids, reg.get(&id).is_some());
    match merge_summaries(parts, &reg.limits()) {
        Some(mut s) => {
            if !missing.is_empty() {
                end_later(&reg, &id, at, missing.clone(), s.expires_unix_ms);
            }
            excuse_handed_over(&reg, &s, &mut missing);
            add_lost(&id, Some(&s), absentees(&reg, &id, absent), &mut missing);
            add_gone_holders(&id, &s, &present, &mut missing);
            // who holds a part now is recorded on every replica, so a part lost later (a
            // restart without a directory) is named, not silently left out of the counts
            let mut all = s.holders.clone();
            if Holder::union(&mut all, &present) {
                record_holders(&reg, &h, std::slice::from_ref(&id), &present).await;
                s.holders = all;
            }
            json(StatusCode::OK, &mark(s, missing))
        }
        None => {
            add_lost(&id, None, absentees(&reg, &id, absent), &mut missing);
            error_partial(RunsError::NotFound(id), missing)
        }
    }
}

/// Adds `holders` to the [`Summary::holders`] of the runs `ids`, here and on every peer
/// (`POST /runs/-/holders`, forwarded; bounded by `peer_timeout`). A peer that misses it still
/// merges the record from the parts of the replicas that have it.
async fn record_holders(reg: &Arc<Registry>, h: &HeaderMap, ids: &[String], holders: &[Holder]) {
    if holders.is_empty() {
        return;
    }
    reg.add_holders(ids, holders);
    let body = serde_json::json!({ "runs": ids, "holders": holders }).to_string();
    let _ = fan_out::<serde_json::Value>(
        reg,
        h,
        reqwest::Method::POST,
        "/runs/-/holders",
        Some(body),
        Duration::ZERO,
        (&[200], &[404]),
    )
    .await;
}

/// Whether `id` is a replica id: 1-64 lowercase hex digits.
fn replica_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a holders list another replica sent is one: at most [`MAX_HOLDERS`], each a
/// replica id and an address that is `host:port` (or empty) and printable without spaces, so
/// nothing a terminal or Markdown would take for markup reaches an answer.
fn valid_holders(list: &[Holder]) -> bool {
    let host_port = |a: &str| {
        a.is_empty()
            || a.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            })
    };
    list.len() <= MAX_HOLDERS
        && list.iter().all(|h| {
            replica_id(&h.replica)
                && h.address.len() <= 255
                && h.address
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:-_[]%".contains(&b))
                && host_port(&h.address)
        })
}

/// The body of `POST /runs/-/holders`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldersRecord {
    /// run ids
    runs: Vec<String>,
    /// replicas that hold a part of each of them
    holders: Vec<Holder>,
}

/// `POST /runs/-/holders`: the tier's record of the replicas that hold a part of runs
/// ([`Summary::holders`]; a JSON object `{"runs": [id, ...], "holders": [{"replica": id,
/// "address": "host:port"}, ...]}`), sent by a replica to its peers at `run-start`, at
/// `run-end`, and when it took runs up from them at start-up (the call must be forwarded).
/// Added to what this replica recorded, never removing any. `200` with how many of the runs
/// it holds, `400` for a bad record, `403` when not forwarded, `404` when it holds none.
async fn holders(State(reg): State<Arc<Registry>>, h: HeaderMap, body: Bytes) -> Response {
    if !forwarded(&h) {
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({ "error": "holders are recorded by the tier's replicas only" }),
        );
    }
    let rec: HoldersRecord = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(RunsError::Invalid(format!(
                "holders: expected {{\"runs\": [id, ...], \"holders\": [{{\"replica\": id, \"address\": \"host:port\"}}, ...]}}: {e}"
            )));
        }
    };
    if !valid_holders(&rec.holders) {
        return error(RunsError::Invalid(format!(
            "holders: at most {MAX_HOLDERS}, each a hex replica id and a host:port address"
        )));
    }
    let mut runs = rec.runs;
    runs.sort_unstable();
    runs.dedup();
    match reg.add_holders(&runs, &rec.holders) {
        0 => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "this replica holds none of these runs" }),
        ),
        n => json(StatusCode::OK, &serde_json::json!({ "runs": n })),
    }
}

/// Largest body of the calls between replicas that carry parts and records (`absorb`,
/// `holders`): a run's part with many services and operations is far over the API's
/// [`MAX_START_BODY_BYTES`], and only a peer sends these (413 beyond).
pub const MAX_PEER_BODY_BYTES: usize = 32 << 20;

/// The body of `POST /runs/{id}/absorb`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Handover {
    /// the replica id of the replica that stops
    from: String,
    /// its part of the run
    part: Summary,
}

/// `POST /runs/{id}/absorb`: a replica that stops hands its part of run `id` to this one,
/// which adds it to its own ([`Registry::absorb`]); a call between replicas only (it must be
/// forwarded). `200` when taken (or taken before: a part is added once), `400` for a bad
/// body (`{"from": replica id, "part": run summary}`, the part's id the path's, `from` another
/// replica's id), `403` when not forwarded, `429` when a new part finds no room, `503` while
/// this replica hands its own parts over (it is stopping too).
async fn absorb(
    State(reg): State<Arc<Registry>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !forwarded(&h) {
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({ "error": "parts are handed over by the tier's replicas only" }),
        );
    }
    let Handover { from, part } = match serde_json::from_slice(&body) {
        Ok(x) => x,
        Err(e) => {
            return error(RunsError::Invalid(format!(
                "absorb: expected {{\"from\": replica id, \"part\": run summary}}: {e}"
            )));
        }
    };
    if part.id != id {
        return error(RunsError::Invalid(format!(
            "absorb: the part is of run {:?}, not {id:?}",
            part.id
        )));
    }
    if !replica_id(&from) || reg.peers.as_ref().is_some_and(|p| p.self_id == from) {
        return error(RunsError::Invalid(
            "absorb: from must be the hex replica id of another replica".into(),
        ));
    }
    // what a part carries into answers is checked as the calls that set it check it
    if !valid_holders(&part.holders)
        || part.absorbed.len() > MAX_HOLDERS
        || !part.absorbed.iter().all(|a| replica_id(a))
    {
        return error(RunsError::Invalid(
            "absorb: the part's holders and absorbed must be replica ids and host:port addresses"
                .into(),
        ));
    }
    use crate::runs::limits::{MAX_LABELS, MAX_MATCH_KEYS, valid_map};
    if let Err(e) = valid_map("labels", &part.labels, MAX_LABELS)
        .and_then(|_| valid_map("match", &part.matchers, MAX_MATCH_KEYS))
    {
        return error(e);
    }
    match reg.absorb(part, &from) {
        Ok(_) => json(StatusCode::OK, &serde_json::json!({ "id": id })),
        Err(e) => error(e),
    }
}

async fn list(
    State(reg): State<Arc<Registry>>,
    h: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let req = match PageRequest::parse(&q) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let local = reg.list_page(&req);
    if forwarded(&h) || reg.peers.is_none() {
        return json(StatusCode::OK, &local);
    }
    let Fanned {
        found: pages,
        missing,
        ..
    } = fan_out::<Page>(
        &reg,
        &h,
        reqwest::Method::GET,
        &format!("/runs?{}", req.query()),
        None,
        Duration::ZERO,
        (&[200], &[]),
    )
    .await;
    // each part is its replica's first page; when any part has more, the merged page (cut
    // to the limit) is not the last one
    let more =
        local.next_page_token.is_some() || pages.iter().any(|(_, p)| p.next_page_token.is_some());
    let lists: Vec<Vec<RunInfo>> = std::iter::once(local.runs)
        .chain(pages.into_iter().map(|(_, p)| p.runs))
        .collect();
    let mut page = paginate(merge_infos(lists), &req);
    if more && page.next_page_token.is_none() {
        page.next_page_token = page.runs.last().map(RunInfo::page_token);
    }
    page.partial = !missing.is_empty();
    page.missing_replicas = missing;
    json(StatusCode::OK, &page)
}

async fn show(State(reg): State<Arc<Registry>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let local = reg.get(&id);
    if forwarded(&h) || reg.peers.is_none() {
        return match local {
            Some(s) => json(StatusCode::OK, &s),
            None => not_found(&reg, &id),
        };
    }
    gather(&reg, &h, &id, local).await
}

/// Routes to merge into the health_check extension's router. Every answer carries this
/// replica's id (when peers are configured) so a replica recognizes itself among its peers.
pub fn router(reg: Arc<Registry>) -> axum::Router {
    let me = reg.peers.as_ref().map(|p| p.self_id.clone());
    let r = axum::Router::new()
        .route("/runs", post(start).get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/end", post(end))
        .route(
            "/runs/{id}/absorb",
            post(absorb).layer(DefaultBodyLimit::max(MAX_PEER_BODY_BYTES)),
        )
        // `-` stands for the runs the body names (a run id may be any text, so the record
        // of several runs lives under a path no single run's calls use)
        .route(
            "/runs/-/holders",
            post(holders).layer(DefaultBodyLimit::max(MAX_PEER_BODY_BYTES)),
        )
        .layer(DefaultBodyLimit::max(MAX_START_BODY_BYTES))
        .with_state(reg);
    match me.and_then(|m| http::HeaderValue::from_str(&m).ok()) {
        Some(v) => r.layer(axum::middleware::map_response(move |mut resp: Response| {
            let v = v.clone();
            async move {
                resp.headers_mut().insert(REPLICA, v);
                resp
            }
        })),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that met a replica before it handed its part over and the peer that took the
    /// part after counts that part once: the replica's own answer is left out.
    #[test]
    fn a_part_absorbed_by_another_is_merged_once() {
        let cfg = crate::runs::RunsConfig {
            peers: vec!["127.0.0.1:1".into()],
            ..Default::default()
        };
        let reg = Registry::new(cfg, None).unwrap_or_else(|e| panic!("{e}"));
        let part = |spans: u64, absorbed: &[&str]| {
            let mut s = Summary::new("r", RunSource::Api, 1);
            s.totals.spans = spans;
            s.absorbed = absorbed.iter().map(|a| a.to_string()).collect();
            s
        };
        let ids: BTreeMap<String, String> = [("x:1", "0a"), ("y:1", "0b"), ("z:1", "0c")]
            .into_iter()
            .map(|(a, i)| (a.to_string(), i.to_string()))
            .collect();
        // 0a answered with its 10 spans before handing them to 0b, which answered after: 30
        let found = vec![
            ("x:1".to_string(), part(10, &[])),
            ("y:1".to_string(), part(30, &["0a"])),
            ("z:1".to_string(), part(5, &[])),
        ];
        let kept = without_absorbed(&reg, &ids, Some(part(1, &[])), found);
        let total: u64 = kept.iter().map(|s| s.totals.spans).sum();
        assert_eq!((kept.len(), total), (3, 36));
        // this replica's own part is left out the same way once a peer lists it
        let me = reg
            .peers
            .as_ref()
            .map(|p| p.self_id.clone())
            .unwrap_or_default();
        let found = vec![("y:1".to_string(), part(30, &[me.as_str()]))];
        let kept = without_absorbed(&reg, &ids, Some(part(1, &[])), found);
        assert_eq!(kept.iter().map(|s| s.totals.spans).sum::<u64>(), 30);
    }
}
