//! A durable (write-ahead log) queue for one destination: the same reserve / commit / offer /
//! pop / done contract as the memory queue, but a commit returns only once the record is in a
//! segment file (and, with `fsync: group`, fsynced), and a record leaves the queue only when
//! the worker reports it delivered or dropped for good (an ack record).
//!
//! Layout: `<file_storage.directory>/<exporter dir>/` holds `NNNNNNNNNNNNNNNNNNNN.seg` segment
//! files (named by the first sequence number they may hold), `acks.log` and `lock`. One writer
//! thread owns the files (`writer`); a replay thread feeds the backlog of a previous run into
//! the queue in order while new data is accepted (`replay`). The in-memory index keeps the
//! payloads of recent records (up to a cache bound) and reads older ones back from disk.

/// The `file_storage` settings live in [`crate::extension::file_storage`]; this path stays for
/// code written against it.
pub use crate::extension::file_storage as config;
pub mod record;
mod replay;
mod writer;

use crate::config::common::FullPolicy;
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::memory::Limits;
use crate::queue::{Offer, Popped, QueueError, Ticket};
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
pub use config::{FileStorageConfig, FsyncMode};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Notify, oneshot};

/// Why a durable queue could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation failed on.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the directory's lock file (the directory).
    #[error("queue directory {0} is locked by another running process")]
    Locked(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One queued record in the index.
struct Entry {
    seq: u64,
    signal: Signal,
    items: u64,
    len: u64,
    /// first seq of the segment (its key) and the frame's offset in it
    seg: u64,
    offset: u64,
    /// `None`: read it back from the segment file when popped
    payload: Option<Bytes>,
}

/// A segment file known to the queue.
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// records in it not yet acked
    unacked: u64,
    /// acked seqs in it (rewritten when acks.log is compacted)
    acked: Vec<u64>,
    /// the writer's current segment: never deleted
    active: bool,
}

#[derive(Default)]
struct State {
    /// records of the current run, per signal, in seq order
    live: [VecDeque<Entry>; 3],
    /// records replayed from a previous run (all older than `live`), per signal
    replay: [VecDeque<Entry>; 3],
    /// bytes queued + reserved + in flight
    bytes: u64,
    /// records queued + reserved (not in flight)
    requests: usize,
    queued_items: u64,
    cache_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    closed: bool,
    replay_done: bool,
}

impl State {
    fn take(&mut self, signal: Option<Signal>) -> Option<Entry> {
        let pick = |qs: &[VecDeque<Entry>; 3]| -> Option<usize> {
            match signal {
                Some(s) => (!qs[s as usize].is_empty()).then_some(s as usize),
                None => (0..3)
                    .filter(|&i| !qs[i].is_empty())
                    .min_by_key(|&i| qs[i][0].seq),
            }
        };
        let e = if let Some(i) = pick(&self.replay) {
            self.replay[i].pop_front()
        } else {
            let i = pick(&self.live)?;
            self.live[i].pop_front()
        }?;
        self.requests = self.requests.saturating_sub(1);
        self.queued_items = self.queued_items.saturating_sub(e.items);
        if e.payload.is_some() {
            self.cache_bytes = self.cache_bytes.saturating_sub(e.len);
        }
        Some(e)
    }
}

/// What the queue shares with its writer and replay threads.
struct Shared {
    id: String,
    dir: PathBuf,
    limits: Limits,
    cache_limit: u64,
    state: Mutex<State>,
    data: Notify,
    room: Notify,
    metrics: Arc<Metrics>,
    /// test hook: make every append fail as a full disk would
    fail_writes: AtomicBool,
}

impl Shared {
    fn fits(&self, st: &State, bytes: u64) -> bool {
        let bytes_ok = st.bytes + bytes <= self.limits.max_bytes || st.bytes == 0;
        bytes_ok && st.requests < self.limits.max_requests
    }

    fn release(&self, bytes: u64, requests: usize) {
        let mut st = self.state.lock();
        st.bytes = st.bytes.saturating_sub(bytes);
        st.requests = st.requests.saturating_sub(requests);
        drop(st);
        self.room.notify_waiters();
    }

    fn damage(&self, kind: &str, n: u64) {
        self.metrics.queue.durable_damage(&self.id, kind, n);
    }
}

/// A command for the writer thread.
enum Cmd {
    Append(Append),
    Ack(Vec<u64>),
    /// flush and stop
    Finish(oneshot::Sender<()>),
}

struct Append {
    payload: Payload,
    /// room taken for it; the writer takes the room over when it indexes the record
    hold: Arc<Hold>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Room held for a record on its way to disk. Whoever clears `armed` first owns the bytes:
/// the writer (the record is indexed) or the requester giving up (room released).
struct Hold {
    bytes: u64,
    armed: AtomicBool,
}

/// The durable queue of one destination.
pub struct DurableQueue {
    shared: Arc<Shared>,
    cmd: Mutex<Option<std::sync::mpsc::Sender<Cmd>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// holds the directory's flock for the life of the queue
    _lock: File,
}

/// Room reserved in a durable queue (all-or-nothing phase of the router).
pub struct DurableReservation {
    queue: Arc<DurableQueue>,
    hold: Arc<Hold>,
}

impl Drop for DurableReservation {
    fn drop(&mut self) {
        if self.hold.armed.swap(false, Ordering::SeqCst) {
            self.queue.shared.release(self.hold.bytes, 1);
        }
    }
}

impl DurableReservation {
    /// Appends the payload; returns once it is durable per the fsync mode.
    pub async fn commit(self, payload: Payload) -> Result<(), QueueError> {
        let q = self.queue.clone();
        let r = q.append(payload, self.hold.clone()).await;
        // on success the writer owns the room; on failure dropping `self` releases it
        drop(self);
        r
    }
}

/// The subdirectory of an exporter id: `otlphttp/tempo` -> `otlphttp.tempo` (a type has no
/// `.` so this is one-to-one), other unsafe bytes percent-encoded.
pub fn queue_dir_name(id: &str) -> String {
    let mut out = String::new();
    let (t, name) = match id.split_once('/') {
        Some((t, n)) => (t, Some(n)),
        None => (id, None),
    };
    let enc = |s: &str, out: &mut String| {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !out.is_empty())
            {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    };
    enc(t, &mut out);
    if let Some(n) = name {
        out.push('.');
        enc(n, &mut out);
    }
    out
}

impl DurableQueue {
    /// Opens (or creates) the queue of exporter `id` under the extension's directory, starts
    /// its writer and, when a previous run left records, the replay of that backlog.
    pub fn open(
        id: &str,
        cfg: &FileStorageConfig,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, OpenError> {
        let base = PathBuf::from(&cfg.directory);
        if !base.is_dir() {
            if cfg.create_directory {
                std::fs::create_dir_all(&base).map_err(io_err(&base))?;
            } else {
                return Err(OpenError::Io {
                    path: base.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "directory does not exist (create_directory: false)",
                    ),
                });
            }
        }
        let dir = base.join(queue_dir_name(id));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = lock_dir(&dir)?;
        let shared = Arc::new(Shared {
            id: id.to_string(),
            dir: dir.clone(),
            limits,
            cache_limit: limits.max_bytes.min(64 << 20),
            state: Mutex::new(State::default()),
            data: Notify::new(),
            room: Notify::new(),
            metrics,
            fail_writes: AtomicBool::new(false),
        });
        let old = replay::scan_dir(&shared)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let w = writer::Writer::open(shared.clone(), cfg, old.next_seq, old.acks_path.clone())?;
        let writer = std::thread::Builder::new()
            .name(format!("wal-{id}"))
            .spawn(move || w.run(rx))
            .map_err(io_err(&dir))?;
        if old.segments.is_empty() {
            shared.state.lock().replay_done = true;
        } else {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name(format!("replay-{id}"))
                .spawn(move || replay::run(sh, old))
                .map_err(io_err(&dir))?;
        }
        Ok(Arc::new(DurableQueue {
            shared,
            cmd: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            _lock: lock,
        }))
    }

    /// The queue's bounds (bytes and records, as configured by `sending_queue`).
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    fn send(&self, c: Cmd) -> bool {
        match &*self.cmd.lock() {
            Some(tx) => tx.send(c).is_ok(),
            None => false,
        }
    }

    async fn append(&self, payload: Payload, hold: Arc<Hold>) -> Result<(), QueueError> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Cmd::Append(Append {
            payload,
            hold,
            reply,
        })) {
            return Err(QueueError::Closed);
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(QueueError::Storage(e)),
            Err(_) => Err(QueueError::Closed),
        }
    }

    /// Reserves room for `bytes`, waiting up to `wait`.
    pub async fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        wait: Duration,
    ) -> Option<DurableReservation> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.shared.room.notified();
            {
                let mut st = self.shared.state.lock();
                if st.closed {
                    return None;
                }
                if self.shared.fits(&st, bytes) {
                    st.bytes += bytes;
                    st.requests += 1;
                    return Some(DurableReservation {
                        queue: self.clone(),
                        hold: Arc::new(Hold {
                            bytes,
                            armed: AtomicBool::new(true),
                        }),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Enqueues under `drop_newest` / `drop_oldest`: never waits for room, but does wait for
    /// the append (the answer must not come before the record is durable).
    pub async fn offer(self: &Arc<Self>, payload: Payload, policy: FullPolicy) -> Offer {
        let bytes = payload.len() as u64;
        let items = payload.items;
        let mut evicted_items = 0u64;
        let mut evicted_seqs = Vec::new();
        {
            let mut st = self.shared.state.lock();
            if st.closed {
                return Offer::DroppedNew { items };
            }
            if !self.shared.fits(&st, bytes) {
                if policy != FullPolicy::DropOldest {
                    return Offer::DroppedNew { items };
                }
                while !self.shared.fits(&st, bytes) {
                    match st.take(None) {
                        Some(old) => {
                            st.bytes = st.bytes.saturating_sub(old.len);
                            evicted_items += old.items;
                            evicted_seqs.push(old.seq);
                        }
                        None => break,
                    }
                }
                if !self.shared.fits(&st, bytes) {
                    drop(st);
                    self.ack(evicted_seqs);
                    return Offer::DroppedNew {
                        items: items + evicted_items,
                    };
                }
            }
            st.bytes += bytes;
            st.requests += 1;
        }
        if !evicted_seqs.is_empty() {
            self.ack(evicted_seqs);
        }
        let hold = Arc::new(Hold {
            bytes,
            armed: AtomicBool::new(true),
        });
        let r = self.append(payload, hold.clone()).await;
        if r.is_err() && hold.armed.swap(false, Ordering::SeqCst) {
            self.shared.release(bytes, 1);
        }
        match r {
            Err(_) => Offer::Failed {
                items,
                evicted: evicted_items,
            },
            Ok(()) if evicted_items > 0 => Offer::QueuedAfterDropping {
                items: evicted_items,
            },
            Ok(()) => Offer::Queued,
        }
    }

    fn ack(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            // a closed writer loses the ack: the records are replayed next start (at-least-once)
            let _ = self.send(Cmd::Ack(seqs));
        }
    }

    /// Takes the next record, waiting for one. `None` once closed and empty.
    pub async fn pop(&self) -> Option<Popped> {
        loop {
            let notified = self.shared.data.notified();
            if let Some(p) = self.take_async(None).await {
                return Some(p);
            }
            if self.shared.state.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Takes the next record of `signal`, waiting for one until `deadline`.
    pub async fn pop_signal_until(
        &self,
        signal: Signal,
        deadline: tokio::time::Instant,
    ) -> Option<Popped> {
        loop {
            let notified = self.shared.data.notified();
            if let Some(p) = self.take_async(Some(signal)).await {
                return Some(p);
            }
            if self.shared.state.lock().closed {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Takes the next record without waiting for one to be queued. A record whose payload is
    /// only on disk is read back on the blocking pool, never on the async workers.
    pub async fn pop_ready_signal(&self, signal: Signal) -> Option<Popped> {
        self.take_async(Some(signal)).await
    }

    /// Takes the next record without waiting, reading a payload that is only on disk on the
    /// calling thread (tests and blocking callers; async code uses [`Self::pop`]).
    pub fn try_pop(&self) -> Option<Popped> {
        loop {
            let (e, file) = self.take_entry(None)?;
            let payload = match e.payload.clone() {
                Some(b) => Some(b),
                None => file.and_then(|f| read_back(&f, Loc::of(&e))),
            };
            if let Some(p) = self.popped(e, payload) {
                return Some(p);
            }
        }
    }

    async fn take_async(&self, signal: Option<Signal>) -> Option<Popped> {
        loop {
            let (e, file) = self.take_entry(signal)?;
            let payload = match (e.payload.clone(), file) {
                (Some(b), _) => Some(b),
                (None, Some(f)) => {
                    let loc = Loc::of(&e);
                    tokio::task::spawn_blocking(move || read_back(&f, loc))
                        .await
                        .ok()
                        .flatten()
                }
                (None, None) => None,
            };
            if let Some(p) = self.popped(e, payload) {
                return Some(p);
            }
        }
    }

    /// Removes the next entry (of `signal`) from the index, with its segment file when its
    /// payload must be read back.
    fn take_entry(&self, signal: Option<Signal>) -> Option<(Entry, Option<Arc<File>>)> {
        let taken = {
            let mut st = self.shared.state.lock();
            let e = st.take(signal)?;
            let file = if e.payload.is_none() {
                st.segments.get(&e.seg).map(|s| s.file.clone())
            } else {
                None
            };
            (e, file)
        };
        self.shared.room.notify_waiters();
        Some(taken)
    }

    /// The popped record, or `None` (counted, acked, skipped) when its payload could not be
    /// read back although it was valid when indexed.
    fn popped(&self, e: Entry, payload: Option<Bytes>) -> Option<Popped> {
        match payload {
            Some(bytes) => Some(Popped {
                payload: Payload::new(e.signal, bytes, e.items),
                ticket: Ticket {
                    bytes: e.len,
                    seq: Some(e.seq),
                },
            }),
            None => {
                tracing::error!(exporter = %self.shared.id, seq = e.seq, "durable queue record unreadable; skipped");
                self.shared.damage("corrupt_record", 1);
                self.shared
                    .metrics
                    .dropped(&self.shared.id, e.signal, "storage_corrupt", e.items);
                self.shared.release(e.len, 0);
                self.ack(vec![e.seq]);
                None
            }
        }
    }

    /// Releases popped records. `left` = delivered or dropped for good (acked on disk);
    /// otherwise (shutdown mid-retry) they stay on disk for the next start.
    pub fn done(&self, tickets: &[Ticket], left: bool) {
        let bytes: u64 = tickets.iter().map(|t| t.bytes).sum();
        self.shared.release(bytes, 0);
        if left {
            self.ack(tickets.iter().filter_map(|t| t.seq).collect());
        }
    }

    /// Stops accepting; consumers drain what is queued (reading it back from disk), then see
    /// `None`. Records not acked stay in the log for the next start.
    pub fn close(&self) {
        self.shared.state.lock().closed = true;
        self.shared.data.notify_waiters();
        self.shared.room.notify_waiters();
    }

    /// Items still queued at shutdown: they stay on disk and are replayed on the next start.
    pub fn remaining(&self) -> u64 {
        self.shared.state.lock().queued_items
    }

    /// Flushes acks and data and stops the writer thread.
    pub async fn finish(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::Finish(tx)) {
            let _ = rx.await;
        }
        self.cmd.lock().take();
        let handle = self.writer.lock().take();
        if let Some(h) = handle {
            // the writer has replied to Finish, so it is returning
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    /// (queued records, bytes held incl. in flight, queued items)
    pub fn stats(&self) -> (usize, u64, u64) {
        let st = self.shared.state.lock();
        let n = st
            .live
            .iter()
            .chain(st.replay.iter())
            .map(|q| q.len())
            .sum();
        (n, st.bytes, st.queued_items)
    }

    /// True once the backlog of a previous run has been indexed.
    pub fn replay_done(&self) -> bool {
        self.shared.state.lock().replay_done
    }

    /// Makes every following append fail as a full disk would (tests).
    pub fn inject_write_failure(&self, on: bool) {
        self.shared.fail_writes.store(on, Ordering::SeqCst);
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for DurableQueue {
    fn drop(&mut self) {
        // closing the channel makes the writer flush and exit
        self.cmd.lock().take();
    }
}

/// Where a record's frame is in its segment file.
#[derive(Clone, Copy)]
struct Loc {
    seq: u64,
    len: u64,
    offset: u64,
}

impl Loc {
    fn of(e: &Entry) -> Self {
        Loc {
            seq: e.seq,
            len: e.len,
            offset: e.offset,
        }
    }
}

/// Reads a record's payload back from its segment, checking its frame (a blocking pread,
/// CRC check and copy).
fn read_back(file: &File, e: Loc) -> Option<Bytes> {
    let len = record::HEADER_LEN + record::DATA_FIXED_LEN + usize::try_from(e.len).ok()?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, e.offset).ok()?;
    match record::Reader::new(&buf).next()? {
        record::Item::Record {
            offset: 0,
            body: record::Body::Data { seq, payload, .. },
        } if seq == e.seq => Some(Bytes::copy_from_slice(payload)),
        _ => None,
    }
}

/// Takes an exclusive flock on `dir/lock`, so two gateways never share a queue.
fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a valid open descriptor; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(OpenError::Locked(dir.display().to_string()));
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
