//! Gives back the resident memory of code that only ran while the gateway started.
//!
//! Start-up (argument and YAML parsing, `validate`, building every component, TLS set-up)
//! touches code spread over the whole executable, and every page it touched stays mapped, so
//! it counts in the process's resident set (`VmRSS`, what the Collector testbed and
//! `kubectl top` report) for the life of the process although it never runs again. For a
//! sidecar that is most of its resident memory: about 15 MiB of file-backed pages against
//! 1.5 MiB of heap when idle (`make bench-sidecar`, docs/replicas.md).
//!
//! Once the service is ready, [`release`] unmaps the executable's read-only pages
//! (`madvise(MADV_DONTNEED)`): code that runs again is mapped back from the page cache on its
//! next use (a minor fault, no I/O while the file stays cached), code that never runs again
//! stops counting. Only mappings that are read-only **and** hold no private (copy-on-write)
//! page are released: for those, every resident page is the file's own content, so mapping it
//! back gives the same bytes. The relocated RELRO segment and the data segments, which hold
//! private pages, are never touched. The hot code is kept dense by the link order in
//! `build/symbol-order.txt` (docs/ARCHITECTURE.md, "Resident memory"), so what the steady
//! state maps back stays small.

use std::fs;

/// What [`release`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Mappings of the executable released.
    pub mappings: usize,
    /// Resident bytes those mappings held before the release (`Rss:` of /proc/self/smaps).
    pub bytes: u64,
}

/// One mapping of /proc/self/smaps: its address range, permissions, path and the two sizes
/// the decision needs (bytes).
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss: u64,
    anonymous: u64,
}

/// Parses /proc/<pid>/smaps text. Lines it does not know are skipped; a header without a
/// path gets an empty one.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = fields.next().unwrap_or_default().to_string();
            // offset, device, inode, then the path (which may contain spaces)
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            out.push(Mapping {
                start,
                end,
                perms,
                path,
                rss: 0,
                anonymous: 0,
            });
            continue;
        }
        let kib = || {
            fields
                .clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(0, |v| v * 1024)
        };
        if let Some(m) = out.last_mut() {
            match first {
                "Rss:" => m.rss = kib(),
                "Anonymous:" => m.anonymous = kib(),
                _ => {}
            }
        }
    }
    out
}

/// The read-only (`r--p` / `r-xp`) mappings of the file that holds `code` (an address inside
/// the executable's text).
fn executable_read_only(maps: &[Mapping], code: usize) -> Vec<&Mapping> {
    let Some(exe) = maps.iter().find(|m| m.start <= code && code < m.end) else {
        return Vec::new();
    };
    if exe.path.is_empty() || !exe.path.starts_with('/') {
        return Vec::new();
    }
    maps.iter()
        .filter(|m| m.path == exe.path)
        .filter(|m| m.perms == "r-xp" || m.perms == "r--p")
        .collect()
}

/// Those of [`executable_read_only`] that are safe to release: no private page, and resident.
fn releasable(maps: &[Mapping], code: usize) -> Vec<&Mapping> {
    executable_read_only(maps, code)
        .into_iter()
        .filter(|m| m.anonymous == 0 && m.rss > 0)
        .collect()
}

/// Asks the kernel to read the executable's code from disk page by page rather than in
/// read-ahead chunks (`madvise(MADV_RANDOM)` on its read-only mappings), called first thing at
/// start-up. A page read in alone is mapped alone; read ahead, it comes in a large folio that
/// is mapped whole on its first use, so one call into cold code would keep up to hundreds of
/// KiB of neighbouring code resident. Pages already in the page cache (another process of the
/// same image read them) keep the folio they have. Returns how many mappings were advised;
/// zero where /proc is unreadable.
pub fn advise_random() -> usize {
    let Ok(text) = fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let maps = parse_smaps(&text);
    let code = release as *const () as usize;
    let mut n = 0;
    for m in executable_read_only(&maps, code) {
        // SAFETY: advice only; the range is a whole mapping of this process.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_RANDOM,
            )
        };
        if rc == 0 {
            n += 1;
        }
    }
    n
}

/// Releases the executable's read-only, unmodified pages from the resident set (Linux; a
/// no-op returning zeros elsewhere or when /proc is unreadable). Safe to call at any time
/// from any thread: the released code is mapped back on its next use.
pub fn release() -> Released {
    let Ok(text) = fs::read_to_string("/proc/self/smaps") else {
        return Released::default();
    };
    let maps = parse_smaps(&text);
    let code = release as *const () as usize;
    let mut done = Released::default();
    for m in releasable(&maps, code) {
        // SAFETY: the range is a whole mapping of this process that is read-only and has no
        // private page (checked above), so MADV_DONTNEED only drops page-table entries whose
        // content is re-read, unchanged, from the mapped file on the next access.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            done.mappings += 1;
            done.bytes += m.rss;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d000000000-55d000100000 r--p 00000000 fe:00 42 /usr/bin/watch tower
Rss:                1024 kB
Anonymous:             0 kB
55d000100000-55d000900000 r-xp 00100000 fe:00 42 /usr/bin/watch tower
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
55d000900000-55d000950000 r--p 00900000 fe:00 42 /usr/bin/watch tower
Rss:                 320 kB
Anonymous:           320 kB
55d000950000-55d000960000 rw-p 00950000 fe:00 42 /usr/bin/watch tower
Rss:                  64 kB
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 7 /usr/lib/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 500 kB
Anonymous:           500 kB
";

    #[test]
    fn parses_ranges_paths_with_spaces_and_sizes() {
        let m = parse_smaps(SMAPS);
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].start, 0x55d000100000);
        assert_eq!(m[1].end, 0x55d000900000);
        assert_eq!(m[1].perms, "r-xp");
        assert_eq!(m[1].path, "/usr/bin/watch tower");
        assert_eq!(m[1].rss, 6000 * 1024);
        assert_eq!(m[2].anonymous, 320 * 1024);
        assert_eq!(m[5].path, "");
    }

    #[test]
    fn releases_only_the_executables_unmodified_read_only_mappings() {
        let maps = parse_smaps(SMAPS);
        let chosen: Vec<usize> = releasable(&maps, 0x55d000200000)
            .iter()
            .map(|m| m.start)
            .collect();
        // the headers/rodata and the text; not the relocated RELRO (private pages), not the
        // data segment, not libc, not anonymous memory
        assert_eq!(chosen, vec![0x55d000000000, 0x55d000100000]);
    }

    #[test]
    fn an_address_outside_any_file_mapping_releases_nothing() {
        let maps = parse_smaps(SMAPS);
        assert!(releasable(&maps, 0x7f0000250000).is_empty());
        assert!(releasable(&maps, 0x1000).is_empty());
    }

    #[test]
    fn release_lowers_this_processs_file_backed_resident_memory_and_code_still_runs() {
        fn rss_file_kib() -> u64 {
            let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
            s.lines()
                .find(|l| l.starts_with("RssFile:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }
        let before = rss_file_kib();
        let r = release();
        assert!(
            r.mappings >= 1,
            "the test binary's text is releasable: {r:?}"
        );
        assert!(r.bytes > 0, "{r:?}");
        let after = rss_file_kib();
        assert!(after < before, "RssFile {before} KiB -> {after} KiB");
        // the released code runs again (mapped back on use)
        let again = parse_smaps(SMAPS);
        assert_eq!(again.len(), 6);
    }
}
