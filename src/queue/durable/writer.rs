//! The writer thread: the only code that appends to a queue's files. It takes every command
//! waiting in its channel at once, writes all appends with one `write`, and (with
//! `fsync: group`) one `fdatasync` covers them all before any of their requesters is answered:
//! that is the group commit. Acks are appended to `acks.log` and flushed on the interval tick;
//! losing a few acks in a power cut only means a few records are sent again.

use super::{Append, Cmd, Entry, FileStorageConfig, FsyncMode, OpenError, Segment, Shared, io_err};
use crate::queue::durable::record;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// acks.log is rewritten with only the live acks once it grows past this.
const ACK_COMPACT_BYTES: u64 = 4 << 20;
/// At most this many commands per group.
const MAX_GROUP: usize = 4096;

pub(super) struct Writer {
    shared: Arc<Shared>,
    mode: FsyncMode,
    interval: Duration,
    segment_size: u64,
    active: File,
    active_len: u64,
    /// set after a failed write or fsync: start a fresh segment before the next append
    must_rotate: bool,
    next_seq: u64,
    acks: File,
    acks_path: PathBuf,
    acks_len: u64,
    dirty_data: bool,
    dirty_acks: bool,
    last_sync: Instant,
    buf: Vec<u8>,
}

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Writer {
    pub(super) fn open(
        shared: Arc<Shared>,
        cfg: &FileStorageConfig,
        next_seq: u64,
        acks_path: PathBuf,
    ) -> Result<Self, OpenError> {
        let acks = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&acks_path)
            .map_err(io_err(&acks_path))?;
        let acks_len = acks.metadata().map(|m| m.len()).unwrap_or(0);
        let (active, path) = create_segment(&shared.dir, next_seq)?;
        let mut w = Writer {
            shared,
            mode: cfg.fsync,
            interval: cfg.fsync_interval.0.max(Duration::from_millis(10)),
            segment_size: cfg.segment_size.0,
            active,
            active_len: 0,
            must_rotate: false,
            next_seq,
            acks,
            acks_path,
            acks_len,
            dirty_data: false,
            dirty_acks: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
        };
        if w.mode != FsyncMode::Never {
            let _ = sync_dir(&w.shared.dir);
        }
        w.register_active(next_seq, path)?;
        Ok(w)
    }

    fn register_active(&mut self, first: u64, path: PathBuf) -> Result<(), OpenError> {
        let read = File::open(&path).map_err(io_err(&path))?;
        let mut st = self.shared.state.lock();
        let mut retired = Vec::new();
        for (k, s) in st.segments.iter_mut() {
            if s.active {
                s.active = false;
                if s.unacked == 0 {
                    retired.push(*k);
                }
            }
        }
        let mut delete = Vec::new();
        for k in retired {
            if let Some(s) = st.segments.remove(&k) {
                delete.push(s.path);
            }
        }
        st.segments.insert(
            first,
            Segment {
                path,
                file: Arc::new(read),
                unacked: 0,
                acked: Vec::new(),
                active: true,
            },
        );
        drop(st);
        for p in delete {
            remove_segment(&self.shared.id, &p);
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.mode != FsyncMode::Never && self.active_len > 0 {
            // an error here is reported, but the new segment is started anyway
            let _ = self.active.sync_data();
        }
        let first = self.next_seq;
        let (file, path) = create_segment(&self.shared.dir, first).map_err(|e| match e {
            OpenError::Io { source, .. } => source,
            OpenError::Locked(m) => std::io::Error::other(m),
        })?;
        if self.mode != FsyncMode::Never {
            sync_dir(&self.shared.dir)?;
        }
        self.active = file;
        self.active_len = 0;
        self.must_rotate = false;
        self.register_active(first, path).map_err(|e| match e {
            OpenError::Io { source, .. } => source,
            OpenError::Locked(m) => std::io::Error::other(m),
        })
    }

    pub(super) fn run(mut self, rx: Receiver<Cmd>) {
        let mut finish = None;
        loop {
            let wait = self
                .interval
                .saturating_sub(self.last_sync.elapsed())
                .max(Duration::from_millis(1));
            let mut cmds = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(c) => cmds.push(c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while cmds.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => cmds.push(c),
                    Err(_) => break,
                }
            }
            let mut appends = Vec::new();
            let mut acks = Vec::new();
            for c in cmds {
                match c {
                    Cmd::Append(a) => appends.push(a),
                    Cmd::Ack(s) => acks.extend(s),
                    Cmd::Finish(r) => finish = Some(r),
                }
            }
            if !appends.is_empty() {
                self.write_appends(appends);
            }
            if !acks.is_empty() {
                self.write_acks(acks);
            }
            if self.last_sync.elapsed() >= self.interval {
                self.periodic_sync();
            }
            if finish.is_some() {
                break;
            }
        }
        self.final_sync();
        if let Some(r) = finish {
            let _ = r.send(());
        }
    }

    fn periodic_sync(&mut self) {
        self.last_sync = Instant::now();
        if self.mode == FsyncMode::Never {
            return;
        }
        if self.dirty_data {
            let t = Instant::now();
            if let Err(e) = self.active.sync_data() {
                tracing::error!(exporter = %self.shared.id, error = %e, "durable queue fsync failed");
                self.shared.metrics.durable_write_error(&self.shared.id);
                self.must_rotate = true;
            }
            self.shared
                .metrics
                .durable_fsync(&self.shared.id, t.elapsed());
            self.dirty_data = false;
        }
        if self.dirty_acks {
            let _ = self.acks.sync_data();
            self.dirty_acks = false;
        }
    }

    fn final_sync(&mut self) {
        if self.mode != FsyncMode::Never {
            let _ = self.active.sync_data();
            let _ = self.acks.sync_data();
        }
    }

    fn fail_all(&self, appends: Vec<Append>, why: &str) {
        self.shared.metrics.durable_write_error(&self.shared.id);
        tracing::warn!(exporter = %self.shared.id, error = why, records = appends.len(), "durable queue append failed; refusing");
        for a in appends {
            let _ = a.reply.send(Err(why.to_string()));
        }
    }

    fn write_appends(&mut self, appends: Vec<Append>) {
        if self.shared.fail_writes.load(Ordering::SeqCst) {
            return self.fail_all(appends, "injected write failure (No space left on device)");
        }
        if self.must_rotate || (self.active_len >= self.segment_size) {
            if let Err(e) = self.rotate() {
                self.must_rotate = true;
                return self.fail_all(appends, &format!("cannot start a new segment: {e}"));
            }
        }
        let seg_first = self.current_first();
        self.buf.clear();
        let mut placed = Vec::with_capacity(appends.len());
        for a in &appends {
            let seq = self.next_seq;
            self.next_seq += 1;
            let offset = self.active_len + self.buf.len() as u64;
            record::encode_data(
                &mut self.buf,
                seq,
                a.payload.signal,
                a.payload.items,
                &a.payload.bytes,
            );
            placed.push((seq, offset));
        }
        if let Err(e) = self.active.write_all(&self.buf) {
            // cut the partial write off so the segment stays clean; if that fails, a fresh
            // segment is started next time (the reader skips the damage anyway)
            if self.active.set_len(self.active_len).is_err()
                || self.active.seek(SeekFrom::End(0)).is_err()
            {
                self.must_rotate = true;
            }
            return self.fail_all(appends, &e.to_string());
        }
        self.active_len += self.buf.len() as u64;
        if self.mode == FsyncMode::Group {
            let t = Instant::now();
            let r = self.active.sync_data();
            self.shared
                .metrics
                .durable_fsync(&self.shared.id, t.elapsed());
            if let Err(e) = r {
                // after a failed fsync the page state is unknown: never write there again
                self.must_rotate = true;
                return self.fail_all(appends, &format!("fsync: {e}"));
            }
        } else {
            self.dirty_data = true;
        }
        self.index(appends, placed, seg_first);
    }

    fn current_first(&self) -> u64 {
        let st = self.shared.state.lock();
        st.segments
            .iter()
            .find(|(_, s)| s.active)
            .map(|(k, _)| *k)
            .unwrap_or(0)
    }

    /// Makes durable records visible to the workers, then answers their requesters.
    fn index(&mut self, appends: Vec<Append>, placed: Vec<(u64, u64)>, seg: u64) {
        let mut replies = Vec::with_capacity(appends.len());
        {
            let mut st = self.shared.state.lock();
            let cache_limit = self.shared.cache_limit;
            for (a, (seq, offset)) in appends.into_iter().zip(placed) {
                let len = a.payload.len() as u64;
                if a.hold.armed.swap(false, Ordering::SeqCst) {
                    // the held room becomes the record's
                    st.bytes = st.bytes.saturating_sub(a.hold.bytes) + len;
                } else {
                    // the requester gave up after the write: the record is queued all the same
                    st.bytes += len;
                    st.requests += 1;
                }
                let payload = if st.cache_bytes + len <= cache_limit {
                    st.cache_bytes += len;
                    Some(a.payload.bytes.clone())
                } else {
                    None
                };
                st.queued_items += a.payload.items;
                if let Some(s) = st.segments.get_mut(&seg) {
                    s.unacked += 1;
                }
                st.live[a.payload.signal as usize].push_back(Entry {
                    seq,
                    signal: a.payload.signal,
                    items: a.payload.items,
                    len,
                    seg,
                    offset,
                    payload,
                });
                replies.push(a.reply);
            }
        }
        self.shared.data.notify_waiters();
        for r in replies {
            let _ = r.send(Ok(()));
        }
    }

    fn write_acks(&mut self, seqs: Vec<u64>) {
        let mut paths = Vec::new();
        {
            let mut st = self.shared.state.lock();
            let mut emptied = Vec::new();
            for &seq in &seqs {
                let Some((&k, s)) = st.segments.range_mut(..=seq).next_back() else {
                    continue;
                };
                s.unacked = s.unacked.saturating_sub(1);
                s.acked.push(seq);
                if s.unacked == 0 && !s.active {
                    emptied.push(k);
                }
            }
            for k in emptied {
                if let Some(s) = st.segments.remove(&k) {
                    paths.push(s.path);
                }
            }
        }
        for p in paths {
            remove_segment(&self.shared.id, &p);
        }
        self.buf.clear();
        record::encode_acks(&mut self.buf, &seqs);
        match self.acks.write_all(&self.buf) {
            Ok(()) => {
                self.acks_len += self.buf.len() as u64;
                self.dirty_acks = true;
            }
            Err(e) => {
                // acks lost: these records are sent again after a restart
                tracing::warn!(exporter = %self.shared.id, error = %e, "durable queue cannot write acks");
                self.shared.metrics.durable_write_error(&self.shared.id);
            }
        }
        if self.acks_len > ACK_COMPACT_BYTES && self.shared.state.lock().replay_done {
            if let Err(e) = self.compact_acks() {
                tracing::warn!(exporter = %self.shared.id, error = %e, "durable queue cannot compact acks.log");
            }
        }
    }

    /// Rewrites acks.log with the acks of live segments only.
    fn compact_acks(&mut self) -> std::io::Result<()> {
        let live: Vec<u64> = {
            let st = self.shared.state.lock();
            st.segments
                .values()
                .flat_map(|s| s.acked.iter().copied())
                .collect()
        };
        let tmp = self.acks_path.with_extension("tmp");
        let mut buf = Vec::new();
        for chunk in live.chunks(8192) {
            record::encode_acks(&mut buf, chunk);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.acks_path)?;
        sync_dir(&self.shared.dir)?;
        self.acks = OpenOptions::new().append(true).open(&self.acks_path)?;
        self.acks_len = buf.len() as u64;
        self.dirty_acks = false;
        Ok(())
    }
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn create_segment(dir: &Path, first: u64) -> Result<(File, PathBuf), OpenError> {
    let path = segment_path(dir, first);
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok((f, path))
}

pub(super) fn remove_segment(id: &str, p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        tracing::warn!(exporter = %id, path = %p.display(), error = %e, "cannot delete a delivered segment");
    }
}
