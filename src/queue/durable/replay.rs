//! Startup: what a previous run left in a queue directory. [`scan_dir`] runs before the queue
//! accepts data and reads only what it must (the ack log and the newest segment, for the next
//! sequence number); [`run`] then replays the old segments on their own thread, in order, so
//! receivers accept new data while the backlog is sent. Damage is counted and skipped, never
//! fatal: a torn tail is truncated, a corrupt record or unreadable segment is logged.

use super::record::{self, Body, Item};
use super::writer::{remove_segment, sync_dir};
use super::{Entry, OpenError, Segment, Shared, io_err};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The previous run's files.
pub(super) struct Old {
    /// (first seq, path), oldest first
    pub segments: Vec<(u64, PathBuf)>,
    pub acked: HashSet<u64>,
    pub next_seq: u64,
    pub acks_path: PathBuf,
}

/// Counts and logs damage found in `what`; returns the offset to truncate to, if any.
fn account(shared: &Shared, what: &std::path::Path, item: &Item<'_>) -> Option<u64> {
    match item {
        Item::Corrupt { offset, len } => {
            tracing::error!(exporter = %shared.id, file = %what.display(), offset, len, "durable queue: corrupt record skipped");
            shared.damage("corrupt_record", 1);
            None
        }
        Item::TornTail { offset, len } => {
            tracing::warn!(exporter = %shared.id, file = %what.display(), offset, len, "durable queue: torn tail truncated");
            shared.damage("torn_tail", 1);
            Some(*offset as u64)
        }
        // the zeroed rest of a preallocated segment, or the old rest of a recycled one: cut,
        // not counted
        Item::Padding { offset, .. } | Item::Recycled { offset, .. } => Some(*offset as u64),
        Item::Record { .. } => None,
    }
}

fn truncate(shared: &Shared, path: &std::path::Path, at: u64) {
    let r = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(at).and_then(|_| f.sync_all()));
    if let Err(e) = r {
        tracing::warn!(exporter = %shared.id, file = %path.display(), error = %e, "cannot truncate torn tail");
    }
}

pub(super) fn scan_dir(shared: &Shared) -> Result<Old, OpenError> {
    let dir = &shared.dir;
    let acks_path = dir.join("acks.log");
    let mut acked = HashSet::new();
    match std::fs::read(&acks_path) {
        Ok(buf) => {
            let mut cut = None;
            for item in record::Reader::new(&buf) {
                if let Item::Record {
                    body: Body::Acks(s),
                    ..
                } = &item
                {
                    acked.extend(s.iter().copied());
                }
                cut = account(shared, &acks_path, &item).or(cut);
            }
            if let Some(at) = cut {
                truncate(shared, &acks_path, at);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // unreadable acks: everything not yet deleted is sent again (at-least-once)
            tracing::error!(exporter = %shared.id, error = %e, "durable queue: cannot read acks.log; replaying all segments");
            shared.damage("corrupt_segment", 1);
        }
    }
    let mut segments = Vec::new();
    for ent in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let ent = ent.map_err(io_err(dir))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u64>().ok())
        {
            segments.push((first, ent.path()));
        }
    }
    segments.sort();
    let mut next_seq = 1;
    if let Some((first, path)) = segments.last() {
        next_seq = first + 1;
        if let Ok(buf) = std::fs::read(path) {
            for item in record::segment_items(&buf, *first) {
                if let Item::Record {
                    body: Body::Data { seq, .. },
                    ..
                } = item
                {
                    next_seq = next_seq.max(seq + 1);
                }
            }
        }
    }
    // keep only the acks of records still on disk
    let oldest = segments.first().map(|(f, _)| *f).unwrap_or(u64::MAX);
    acked.retain(|s| *s >= oldest);
    let mut keep: Vec<u64> = acked.iter().copied().collect();
    keep.sort_unstable();
    let mut buf = Vec::new();
    for chunk in keep.chunks(8192) {
        record::encode_acks(&mut buf, chunk);
    }
    let tmp = dir.join("acks.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &acks_path)?;
        sync_dir(dir)
    };
    write().map_err(io_err(&acks_path))?;
    Ok(Old {
        segments,
        acked,
        next_seq,
        acks_path,
    })
}

/// Replays the old segments into the queue, oldest first.
pub(super) fn run(shared: Arc<Shared>, old: Old) {
    let mut total_items = 0u64;
    let mut total_records = 0u64;
    for (first, path) in old.segments {
        let buf = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(exporter = %shared.id, file = %path.display(), error = %e, "durable queue: unreadable segment skipped");
                shared.damage("corrupt_segment", 1);
                continue;
            }
        };
        let mut entries = Vec::new();
        let mut acked_here = Vec::new();
        let mut cut = None;
        for item in record::segment_items(&buf, first) {
            if let Item::Record {
                offset,
                body:
                    Body::Data {
                        seq,
                        signal,
                        items,
                        payload,
                    },
            } = &item
            {
                if old.acked.contains(seq) {
                    acked_here.push(*seq);
                } else {
                    entries.push(Entry {
                        seq: *seq,
                        signal: *signal,
                        items: *items,
                        len: payload.len() as u64,
                        seg: first,
                        offset: *offset as u64,
                        payload: None,
                    });
                }
            }
            cut = account(&shared, &path, &item).or(cut);
        }
        if let Some(at) = cut {
            truncate(&shared, &path, at);
        }
        if entries.is_empty() {
            remove_segment(&shared.id, &path);
            continue;
        }
        let file = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                tracing::error!(exporter = %shared.id, file = %path.display(), error = %e, "durable queue: cannot reopen segment; skipped");
                shared.damage("corrupt_segment", 1);
                continue;
            }
        };
        let items: u64 = entries.iter().map(|e| e.items).sum();
        total_items += items;
        total_records += entries.len() as u64;
        {
            let mut st = shared.state.lock();
            st.segments.insert(
                first,
                Segment {
                    path: path.clone(),
                    file,
                    unacked: entries.len() as u64,
                    acked: acked_here,
                    active: false,
                },
            );
            for e in entries {
                st.bytes += e.len;
                st.requests += 1;
                st.queued_items += e.items;
                st.replay[e.signal as usize].push_back(e);
            }
        }
        shared.metrics.queue.durable_replayed(&shared.id, items);
        shared.data.notify_waiters();
    }
    shared.state.lock().replay_done = true;
    if total_records > 0 {
        tracing::info!(exporter = %shared.id, records = total_records, items = total_items, "durable queue: backlog of the previous run queued for delivery");
    }
}
