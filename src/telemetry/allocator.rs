//! The allocator's own figures for the memory limiter. The `watchtower` binary runs on
//! jemalloc with background purging (see `main.rs`), so memory freed after a spike goes back
//! to the OS and `stats.allocated` (bytes in live allocations) falls as soon as the data is
//! dropped, where RSS under glibc malloc stays high and made the limiter refuse forever.
//!
//! A program that links this library without installing jemalloc as its global allocator
//! (unit tests, fuzz targets) gets `None` from [`live_bytes`] and the limiter decides on RSS.

use std::sync::atomic::{AtomicBool, Ordering};

static JEMALLOC_IS_GLOBAL: AtomicBool = AtomicBool::new(false);

/// Declares that jemalloc is this process's global allocator (called by `main`).
pub fn declare_jemalloc_global() {
    JEMALLOC_IS_GLOBAL.store(true, Ordering::Relaxed);
}

/// Bytes in live heap allocations, refreshed now (`epoch` advanced, then `stats.allocated`).
/// `None` when jemalloc is not the global allocator or its statistics cannot be read.
pub fn live_bytes() -> Option<u64> {
    if !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return None;
    }
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::allocated::read()
        .ok()
        .map(|b| b as u64)
}

/// What the process holds: live heap bytes plus the resident memory jemalloc does not
/// manage (code, thread stacks, other allocators), i.e. RSS minus jemalloc's resident pages
/// plus its live bytes. Pages freed but not yet returned to the OS are left out, so the
/// figure falls as soon as data is dropped. `None` as for [`live_bytes`].
pub fn held_bytes() -> Option<u64> {
    if !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return None;
    }
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let live = tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64;
    let resident = tikv_jemalloc_ctl::stats::resident::read().ok()? as u64;
    let rss = crate::telemetry::process::rss_bytes().unwrap_or(resident);
    Some(live + rss.saturating_sub(resident))
}

/// Returns every arena's unused dirty pages to the OS now (`arena.<all>.purge`), instead
/// of waiting for the decay timers. Called by the limiter when RSS is over its soft limit
/// but live allocations are not.
pub fn purge() {
    if !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return;
    }
    // MALLCTL_ARENAS_ALL is 4096
    // SAFETY: "arena.4096.purge" is a void control: no old or new value is passed.
    unsafe {
        let _ = tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}
