//! Run summaries on disk: one JSON file per run in the configured directory, written
//! atomically (temp file + rename) and reloaded at start, so a restart during a run keeps the
//! run open and its summary intact. File names are the hex of the run id, so any id is safe.

use crate::runs::summary::Summary;
use std::path::{Path, PathBuf};

pub fn path_for(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("run-{}.json", hex::encode(id.as_bytes())))
}

pub fn save(dir: &Path, s: &Summary) -> std::io::Result<()> {
    let data = serde_json::to_vec(s).map_err(std::io::Error::other)?;
    let target = path_for(dir, &s.id);
    let tmp = target.with_extension("json.tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, &target)
}

/// The file holding this replica's id (16 hex digits), kept across restarts with the
/// directory, so its parts are known as the same replica's whatever its address.
const REPLICA_ID: &str = "replica-id";

/// This replica's id as kept in `dir` (made and saved on first use), and the open file,
/// locked for the life of the process: the directory belongs to this process alone.
///
/// # Errors
/// The directory is in use by another process (two replicas sharing a runs directory would
/// count every saved part twice), or the file cannot be opened, read or written.
pub fn replica_id(dir: &Path) -> Result<(String, std::fs::File), String> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(REPLICA_ID);
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed
    let locked = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if locked != 0 {
        return Err(format!(
            "{} is locked: another Watchtower process uses this runs directory (each replica needs its own)",
            path.display()
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(io)?;
    let kept = text.trim();
    if kept.len() == 16 && kept.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok((kept.to_ascii_lowercase(), f));
    }
    if !kept.is_empty() {
        tracing::warn!(file = %path.display(), "runs: the replica id file holds no id; a new id replaces it (this replica's parts of runs ended before are counted as another replica's, and missing)");
    }
    let id = format!("{:016x}", rand::random::<u64>());
    f.set_len(0).map_err(io)?;
    f.rewind().map_err(io)?;
    f.write_all(id.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok((id, f))
}

/// The file that says the last process stopped cleanly, every summary saved after its queues
/// drained (so a run reloaded as open lost nothing this replica accepted).
const CLEAN_STOP: &str = "clean-stop";

/// Marks a clean stop (after the final save succeeded).
pub fn mark_clean_stop(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(CLEAN_STOP), b"")
}

/// Whether the last process stopped cleanly; removes the mark, so a crash of this process is
/// not taken for a clean stop at the next start.
pub fn take_clean_stop(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(CLEAN_STOP)).is_ok()
}

/// The file listing the ids of runs forgotten to stay within `max_runs` (hex, one per line,
/// oldest first), so a replica still knows after a restart that its part of those is lost.
const EVICTED: &str = "evicted";

/// Adds `id` to the forgotten runs; with `all` (the ids kept in memory, oldest first) the file
/// is rewritten from them instead, which keeps it bounded.
pub fn save_evicted(dir: &Path, id: &str, all: Option<&[String]>) {
    use std::io::Write;
    let r = match all {
        Some(ids) => {
            let text: String = ids.iter().map(|i| hex::encode(i) + "\n").collect();
            let tmp = dir.join(format!("{EVICTED}.tmp"));
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, dir.join(EVICTED)))
        }
        None => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(EVICTED))
            .and_then(|mut f| f.write_all((hex::encode(id) + "\n").as_bytes())),
    };
    if let Err(e) = r {
        tracing::warn!(dir = %dir.display(), error = %e, "runs: cannot save the forgotten run ids");
    }
}

/// The forgotten run ids saved by [`save_evicted`], oldest first, at most `keep` (the newest).
pub fn load_evicted(dir: &Path, keep: usize) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(EVICTED)).unwrap_or_default();
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| hex::decode(l.trim()).ok())
        .filter_map(|b| String::from_utf8(b).ok())
        .collect();
    ids[ids.len().saturating_sub(keep)..].to_vec()
}

pub fn remove(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(path_for(dir, id));
}

/// Loads every saved summary; unreadable files are logged and skipped.
pub fn load_all(dir: &Path) -> std::io::Result<Vec<Summary>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_run = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("run-") && n.ends_with(".json"));
        if !is_run {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Summary>(&b).map_err(|e| e.to_string()))
        {
            Ok(mut s) => {
                s.reindex();
                out.push(s);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping unreadable run summary")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_id_is_kept_and_the_directory_is_one_process_s() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (id, held) = replica_id(dir.path()).expect("first");
        assert_eq!(id.len(), 16, "{id}");
        // a second holder of the directory (another process, or another open of the file) is
        // refused while the first lives
        let e = replica_id(dir.path()).map(|(i, _)| i).unwrap_err();
        assert!(e.contains("another Watchtower process"), "{e}");
        drop(held);
        let (again, held) = replica_id(dir.path()).expect("after the first let go");
        assert_eq!(again, id, "kept across restarts");
        drop(held);
        // a file that holds no id gets a new one
        std::fs::write(dir.path().join(REPLICA_ID), "hello world").expect("write");
        let (fresh, _held) = replica_id(dir.path()).expect("junk replaced");
        assert!(fresh != id && fresh.len() == 16, "{fresh}");
    }
}
