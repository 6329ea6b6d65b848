//! The memory a container may use, for `memory_limiter.limit_percentage`: the cgroup limit
//! when one is set (v2 `memory.max`, v1 `memory.limit_in_bytes`), else the host's
//! `MemTotal`. The answer names its source so the choice can be logged and exported; there is
//! no fallback constant: when nothing can be read, the caller gets an error.
//!
//! The cgroup of the process comes from `/proc/self/cgroup` (v2: the `0::<path>` line; v1:
//! the line whose controllers include `memory`). Its limit is the smallest one set on the
//! cgroup or any of its ancestors below the mount point, as the kernel enforces it. Inside a
//! container with a private cgroup namespace the path is `/`, so the mount root's file is
//! the container's own limit.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where the total the percentages apply to came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// cgroup v2 `memory.max` at this file.
    CgroupV2(PathBuf),
    /// cgroup v1 `memory.limit_in_bytes` at this file.
    CgroupV1(PathBuf),
    /// The host's `MemTotal` from this meminfo file (no cgroup limit is set).
    Host(PathBuf),
}

impl LimitSource {
    /// The file read.
    pub fn path(&self) -> &Path {
        match self {
            LimitSource::CgroupV2(f) | LimitSource::CgroupV1(f) | LimitSource::Host(f) => f,
        }
    }

    /// Short label for metrics and logs: `cgroup_v2`, `cgroup_v1` or `host`.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitSource::CgroupV2(_) => "cgroup_v2",
            LimitSource::CgroupV1(_) => "cgroup_v1",
            LimitSource::Host(_) => "host",
        }
    }
}

/// Total memory in bytes and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalMemory {
    pub bytes: u64,
    pub source: LimitSource,
}

/// The files consulted: normally `/sys/fs/cgroup`, `/proc/self/cgroup`, `/proc/meminfo`.
/// Tests point these at a fake tree.
#[derive(Clone, Debug)]
pub struct Paths {
    pub cgroup_root: PathBuf,
    pub self_cgroup: PathBuf,
    pub meminfo: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            cgroup_root: "/sys/fs/cgroup".into(),
            self_cgroup: "/proc/self/cgroup".into(),
            meminfo: "/proc/meminfo".into(),
        }
    }
}

/// Why no total could be determined.
#[derive(Debug, Error, PartialEq)]
pub enum TotalMemoryError {
    #[error(
        "no cgroup memory limit is set and {0} cannot be read ({1}); set memory_limiter.limit_mib instead of limit_percentage"
    )]
    NoHostTotal(String, String),
    #[error("{0}: cannot parse {1:?} as a memory limit")]
    Unparsable(String, String),
}

/// v1 reports "no limit" as a page-rounded i64::MAX; anything at or above 2^62 means unset.
const V1_UNLIMITED: u64 = 1 << 62;

/// The total memory the percentages apply to. A cgroup limit above the host's memory (a
/// Kubernetes limit may exceed the node) is no limit in practice: the host's total is used
/// then, as for no limit.
pub fn total_memory(p: &Paths) -> Result<TotalMemory, TotalMemoryError> {
    let own = std::fs::read_to_string(&p.self_cgroup).unwrap_or_default();
    let cgroup = match cgroup_v2_limit(p, &own)? {
        Some(t) => Some(t),
        None => cgroup_v1_limit(p, &own)?,
    };
    match (cgroup, host_total(p)) {
        (Some(c), Ok(h)) if h.bytes < c.bytes => {
            tracing::warn!(
                cgroup_limit_bytes = c.bytes,
                host_bytes = h.bytes,
                cgroup = %c.source.path().display(),
                "memory_limiter: the cgroup memory limit is above the host's memory; the host's total is used"
            );
            Ok(h)
        }
        (Some(c), _) => Ok(c),
        (None, h) => h,
    }
}

/// The host's `MemTotal`.
fn host_total(p: &Paths) -> Result<TotalMemory, TotalMemoryError> {
    let text = std::fs::read_to_string(&p.meminfo).map_err(|e| {
        TotalMemoryError::NoHostTotal(p.meminfo.display().to_string(), e.to_string())
    })?;
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            TotalMemoryError::NoHostTotal(
                p.meminfo.display().to_string(),
                "no MemTotal line".into(),
            )
        })?;
    Ok(TotalMemory {
        bytes: kib * 1024,
        source: LimitSource::Host(p.meminfo.clone()),
    })
}

/// Directories from the cgroup itself up to the mount root (deepest first).
fn chain(root: &Path, rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir = root.join(rel.trim_start_matches('/'));
    loop {
        out.push(dir.clone());
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    if out.last().map(PathBuf::as_path) != Some(root) {
        out.push(root.to_path_buf());
    }
    out
}

/// Smallest limit in `file` along the chain; `None` when no level sets one.
fn smallest(
    dirs: &[PathBuf],
    file: &str,
    parse: impl Fn(&str) -> Option<Option<u64>>,
) -> Result<Option<(u64, PathBuf)>, TotalMemoryError> {
    let mut best: Option<(u64, PathBuf)> = None;
    for d in dirs {
        let f = d.join(file);
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let v = text.trim();
        match parse(v) {
            None => {
                return Err(TotalMemoryError::Unparsable(
                    f.display().to_string(),
                    v.into(),
                ));
            }
            Some(None) => {}
            Some(Some(n)) if best.as_ref().is_none_or(|(b, _)| n < *b) => best = Some((n, f)),
            Some(Some(_)) => {}
        }
    }
    Ok(best)
}

fn cgroup_v2_limit(p: &Paths, own: &str) -> Result<Option<TotalMemory>, TotalMemoryError> {
    let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(None);
    };
    let found = smallest(&chain(&p.cgroup_root, rel), "memory.max", |v| {
        if v == "max" {
            Some(None)
        } else {
            v.parse::<u64>().ok().map(Some)
        }
    })?;
    Ok(found.map(|(bytes, f)| TotalMemory {
        bytes,
        source: LimitSource::CgroupV2(f),
    }))
}

fn cgroup_v1_limit(p: &Paths, own: &str) -> Result<Option<TotalMemory>, TotalMemoryError> {
    let Some(rel) = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrl.split(',').any(|c| c == "memory").then_some(path)
    }) else {
        return Ok(None);
    };
    let root = p.cgroup_root.join("memory");
    let found = smallest(&chain(&root, rel), "memory.limit_in_bytes", |v| {
        v.parse::<u64>()
            .ok()
            .map(|n| (n < V1_UNLIMITED).then_some(n))
    })?;
    Ok(found.map(|(bytes, f)| TotalMemory {
        bytes,
        source: LimitSource::CgroupV1(f),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tree: `/proc/self/cgroup`, `/proc/meminfo` and a cgroup mount under one dir.
    fn tree(self_cgroup: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Paths) {
        let d = tempfile::tempdir().unwrap();
        let p = Paths {
            cgroup_root: d.path().join("sys/fs/cgroup"),
            self_cgroup: d.path().join("proc/self/cgroup"),
            meminfo: d.path().join("proc/meminfo"),
        };
        std::fs::create_dir_all(p.self_cgroup.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&p.cgroup_root).unwrap();
        std::fs::write(&p.self_cgroup, self_cgroup).unwrap();
        std::fs::write(&p.meminfo, "MemTotal:       16384000 kB\nMemFree: 1 kB\n").unwrap();
        for (rel, text) in files {
            let f = p.cgroup_root.join(rel);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        (d, p)
    }

    #[test]
    fn v2_limit_of_the_own_cgroup() {
        let (_d, p) = tree(
            "0::/kubepods/pod1/ctr\n",
            &[
                ("memory.max", "max\n"),
                ("kubepods/memory.max", "max\n"),
                ("kubepods/pod1/ctr/memory.max", "268435456\n"),
            ],
        );
        let t = total_memory(&p).unwrap();
        assert_eq!(t.bytes, 256 << 20);
        assert_eq!(t.source.kind(), "cgroup_v2");
    }

    #[test]
    fn v2_smallest_ancestor_wins() {
        let (_d, p) = tree(
            "0::/a/b\n",
            &[("a/memory.max", "104857600\n"), ("a/b/memory.max", "max\n")],
        );
        let t = total_memory(&p).unwrap();
        assert_eq!(t.bytes, 100 << 20);
        assert!(matches!(t.source, LimitSource::CgroupV2(f) if f.ends_with("a/memory.max")));
    }

    #[test]
    fn v2_namespaced_root_is_the_container_limit() {
        let (_d, p) = tree("0::/\n", &[("memory.max", "536870912\n")]);
        assert_eq!(total_memory(&p).unwrap().bytes, 512 << 20);
    }

    #[test]
    fn a_cgroup_limit_above_the_host_is_the_host() {
        let (_d, p) = tree("0::/x\n", &[("x/memory.max", "1099511627776\n")]);
        let t = total_memory(&p).unwrap();
        assert_eq!(t.bytes, 16384000 * 1024);
        assert_eq!(t.source.kind(), "host");
    }

    #[test]
    fn v2_unlimited_falls_to_host_and_says_so() {
        let (_d, p) = tree("0::/x\n", &[("x/memory.max", "max\n")]);
        let t = total_memory(&p).unwrap();
        assert_eq!(t.bytes, 16384000 * 1024);
        assert_eq!(t.source.kind(), "host");
    }

    #[test]
    fn v1_limit_in_bytes() {
        let (_d, p) = tree(
            "12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n",
            &[
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory/docker/abc/memory.limit_in_bytes", "134217728\n"),
            ],
        );
        let t = total_memory(&p).unwrap();
        assert_eq!(t.bytes, 128 << 20);
        assert_eq!(t.source.kind(), "cgroup_v1");
    }

    #[test]
    fn v1_unlimited_is_host() {
        let (_d, p) = tree(
            "9:memory:/\n",
            &[("memory/memory.limit_in_bytes", "9223372036854771712\n")],
        );
        assert_eq!(total_memory(&p).unwrap().source.kind(), "host");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let (_d, p) = tree("0::/\n", &[("memory.max", "lots\n")]);
        let e = total_memory(&p).unwrap_err().to_string();
        assert!(e.contains("memory.max") && e.contains("lots"), "{e}");
    }

    #[test]
    fn nothing_readable_is_an_error_not_a_constant() {
        let (_d, mut p) = tree("", &[]);
        p.meminfo = p.meminfo.with_file_name("absent");
        let e = total_memory(&p).unwrap_err().to_string();
        assert!(e.contains("limit_mib"), "{e}");
    }
}
