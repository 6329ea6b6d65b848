//! The writer thread: the only code that appends to a queue's files. It takes every command
//! waiting in its channel at once, writes all appends with one vectored write straight from
//! the requests' bytes (a frame is `[header][payload]`, the payload is never copied), and
//! (with `fsync: group`) one `fdatasync` covers them all before any of their requesters is
//! answered: that is the group commit. Acks are appended to `acks.log` and flushed on the
//! interval tick; losing a few acks in a power cut only means a few records are sent again.
//!
//! Segments are preallocated, so that appends overwrite blocks that are already allocated and
//! written: `fdatasync` then flushes data only, with no file size or extent change, hence no
//! filesystem journal commit per group (which on ext4 also waits for every other process's
//! metadata). The next segment (`prealloc.tmp`, the spare) comes from one of two places:
//! - a recycled segment: once every record of a full segment is acked, the file is renamed to
//!   be the spare instead of deleted. This is the steady state while destinations keep up, and
//!   it costs no disk bandwidth. The reader tells the file's old records from its new ones by
//!   their sequence numbers (`record::segment_items`).
//! - zeros: when no segment was freed (a backlog is growing), a helper thread writes a file
//!   full of zeros and syncs it ahead of time. This doubles the bytes written and slows the
//!   groups' fsyncs while it runs, which is why recycling comes first. The reader treats the
//!   zeroed rest of a segment as padding, not damage.

use super::{Append, Cmd, Entry, FileStorageConfig, FsyncMode, OpenError, Segment, Shared, io_err};
use crate::queue::durable::record;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// acks.log is rewritten with only the live acks once it grows past this.
const ACK_COMPACT_BYTES: u64 = 4 << 20;
/// At most this many commands per group.
const MAX_GROUP: usize = 4096;
/// At most this many buffers per `writev` (Linux IOV_MAX is 1024).
const MAX_IOV: usize = 1024;
/// The next segment, being zeroed by the helper thread.
const SPARE_NAME: &str = "prealloc.tmp";

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
    /// frame headers of the group being written
    headers: Vec<[u8; record::DATA_HEADER_LEN]>,
    /// preallocate segments (not with `fsync: never`, where nothing waits for an fsync)
    prealloc: bool,
    /// the next segment, when one is ready or on its way
    spare: Option<Spare>,
}

/// The next segment (`prealloc.tmp`).
enum Spare {
    /// a helper thread is writing it full of zeros
    Zeroing(std::thread::JoinHandle<std::io::Result<File>>),
    /// a delivered segment, renamed, opened for writing at offset 0
    Recycled(File),
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
            headers: Vec::new(),
            prealloc: cfg.fsync != FsyncMode::Never,
            spare: None,
        };
        if !w.prealloc {
            let _ = std::fs::remove_file(w.shared.dir.join(SPARE_NAME));
        }
        // the first segment is not preallocated (that would delay the start); the next is
        w.spawn_spare();
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
            self.retire(&p);
        }
        Ok(())
    }

    /// Starts zeroing the next segment on a helper thread, unless a spare is ready or on its
    /// way.
    fn spawn_spare(&mut self) {
        if !self.prealloc || self.spare.is_some() {
            return;
        }
        let path = self.shared.dir.join(SPARE_NAME);
        let size = self.segment_size;
        self.spare = std::thread::Builder::new()
            .name(format!("wal-prep-{}", self.shared.id))
            .spawn(move || prepare_spare(&path, size))
            .ok()
            .map(Spare::Zeroing);
    }

    /// Deletes a delivered segment, or keeps it as the spare when it is a full one and no
    /// spare is ready or on its way.
    fn retire(&mut self, path: &Path) {
        let full = std::fs::metadata(path).is_ok_and(|m| m.len() >= self.segment_size);
        if !self.prealloc || self.spare.is_some() || !full {
            return remove_segment(&self.shared.id, path);
        }
        let spare = self.shared.dir.join(SPARE_NAME);
        let reuse = std::fs::rename(path, &spare)
            .and_then(|()| OpenOptions::new().write(true).open(&spare));
        match reuse {
            Ok(f) => self.spare = Some(Spare::Recycled(f)),
            Err(e) => {
                tracing::debug!(exporter = %self.shared.id, error = %e, "durable queue: cannot recycle a segment");
                let _ = std::fs::remove_file(path);
                let _ = std::fs::remove_file(&spare);
            }
        }
    }

    /// The spare renamed to segment `first`, if it is ready (never waits for one being
    /// zeroed), and where it came from.
    fn take_spare(&mut self, first: u64) -> Option<(File, PathBuf, &'static str)> {
        let spare = self.shared.dir.join(SPARE_NAME);
        let (file, source) = match self.spare.take_if(|s| match s {
            Spare::Zeroing(h) => h.is_finished(),
            Spare::Recycled(_) => true,
        })? {
            Spare::Recycled(f) => (f, "recycled"),
            Spare::Zeroing(h) => match h.join() {
                Ok(Ok(f)) => (f, "zeroed"),
                Ok(Err(e)) => {
                    tracing::debug!(exporter = %self.shared.id, error = %e, "durable queue: cannot preallocate a segment");
                    return None;
                }
                Err(_) => return None,
            },
        };
        let path = segment_path(&self.shared.dir, first);
        if path.exists() {
            return None;
        }
        match std::fs::rename(&spare, &path) {
            Ok(()) => Some((file, path, source)),
            Err(e) => {
                tracing::debug!(exporter = %self.shared.id, error = %e, "durable queue: cannot use the preallocated segment");
                let _ = std::fs::remove_file(&spare);
                None
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.mode != FsyncMode::Never && self.active_len > 0 {
            // an error here is reported, but the new segment is started anyway
            let _ = self.active.sync_data();
        }
        let first = self.next_seq;
        let (file, path, source) = match self.take_spare(first) {
            Some(spare) => spare,
            None => {
                // no segment was freed in time (a backlog is growing): this one is not
                // preallocated, and the next one is zeroed ahead
                let (file, path) = create_segment(&self.shared.dir, first).map_err(into_io)?;
                self.spawn_spare();
                (file, path, "fresh")
            }
        };
        self.shared
            .metrics
            .queue
            .durable_segment_started(&self.shared.id, source);
        if self.mode != FsyncMode::Never {
            sync_dir(&self.shared.dir)?;
        }
        self.active = file;
        self.active_len = 0;
        self.must_rotate = false;
        self.register_active(first, path).map_err(into_io)
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
                self.shared
                    .metrics
                    .queue
                    .durable_write_error(&self.shared.id);
                self.must_rotate = true;
            }
            self.shared
                .metrics
                .queue
                .durable_fsync(&self.shared.id, t.elapsed());
            self.dirty_data = false;
        }
        if self.dirty_acks {
            let _ = self.acks.sync_data();
            self.dirty_acks = false;
        }
    }

    fn final_sync(&mut self) {
        // cut the unused zeros of a preallocated segment (the reader would skip them anyway)
        let len = self.active.metadata().map(|m| m.len()).unwrap_or(0);
        if len > self.active_len {
            let _ = self.active.set_len(self.active_len);
        }
        if self.mode != FsyncMode::Never {
            let _ = self.active.sync_data();
            let _ = self.acks.sync_data();
        }
        if let Some(spare) = self.spare.take() {
            if let Spare::Zeroing(h) = spare {
                let _ = h.join();
            }
            let _ = std::fs::remove_file(self.shared.dir.join(SPARE_NAME));
        }
    }

    fn fail_all(&self, appends: Vec<Append>, why: &str) {
        self.shared
            .metrics
            .queue
            .durable_write_error(&self.shared.id);
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
        self.headers.clear();
        let mut placed = Vec::with_capacity(appends.len());
        let mut end = self.active_len;
        for a in &appends {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.headers.push(record::data_header(
                seq,
                a.payload.signal,
                a.payload.items,
                &a.payload.bytes,
            ));
            placed.push((seq, end));
            end += (record::DATA_HEADER_LEN + a.payload.bytes.len()) as u64;
        }
        if let Err(e) = write_frames(&mut self.active, &self.headers, &appends) {
            // cut the partial write off so the segment stays clean (this also drops the
            // preallocated rest); if that fails, a fresh segment is started next time (the
            // reader skips the damage anyway)
            if self.active.set_len(self.active_len).is_err()
                || self.active.seek(SeekFrom::Start(self.active_len)).is_err()
            {
                self.must_rotate = true;
            }
            return self.fail_all(appends, &e.to_string());
        }
        self.active_len = end;
        if self.mode == FsyncMode::Group {
            let t = Instant::now();
            let r = self.active.sync_data();
            self.shared
                .metrics
                .queue
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
            self.retire(&p);
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
                self.shared
                    .metrics
                    .queue
                    .durable_write_error(&self.shared.id);
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

fn into_io(e: OpenError) -> std::io::Error {
    match e {
        OpenError::Io { source, .. } => source,
        OpenError::Locked(m) => std::io::Error::other(m),
    }
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// Writes `[header][payload]` of every append at the file position, as few `writev`s as the
/// kernel allows; the payloads are written from the requests' own buffers.
fn write_frames(
    file: &mut File,
    headers: &[[u8; record::DATA_HEADER_LEN]],
    appends: &[Append],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * appends.len());
    for (h, a) in headers.iter().zip(appends) {
        slices.push(IoSlice::new(h));
        if !a.payload.bytes.is_empty() {
            slices.push(IoSlice::new(&a.payload.bytes));
        }
    }
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = rest.len().min(MAX_IOV);
        match file.write_vectored(&rest[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` full of zeros, synced (data and size), positioned at 0: a segment whose
/// blocks are allocated and written, so overwriting it needs no metadata update.
fn prepare_spare(path: &Path, size: u64) -> std::io::Result<File> {
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new().create_new(true).write(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let r = (|| {
        let mut left = size;
        let mut since_sync = 0u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            f.write_all(&zeros[..n as usize])?;
            left -= n;
            since_sync += n;
            // a few MiB at a time, so the zeros never queue up in front of a group's fsync
            if since_sync >= 4 << 20 {
                f.sync_data()?;
                since_sync = 0;
            }
        }
        f.sync_all()?;
        f.seek(SeekFrom::Start(0))
    })();
    match r {
        Ok(_) => Ok(f),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

fn create_segment(dir: &Path, first: u64) -> Result<(File, PathBuf), OpenError> {
    let path = segment_path(dir, first);
    let f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok((f, path))
}

pub(super) fn remove_segment(id: &str, p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        tracing::warn!(exporter = %id, path = %p.display(), error = %e, "cannot delete a delivered segment");
    }
}
