//! Raises the process's open-file soft limit (`RLIMIT_NOFILE`) to its hard limit at start,
//! where the system allows, so the connection caps, not the descriptor limit, decide when
//! new connections are turned away.

/// Soft and hard `RLIMIT_NOFILE` after trying to raise the soft limit to the hard one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoFile {
    pub before: libc::rlim_t,
    pub soft: libc::rlim_t,
    pub hard: libc::rlim_t,
}

/// Raises the soft limit to the hard limit. Errors carry the OS error text.
pub fn raise() -> Result<NoFile, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        lim = want;
    }
    Ok(NoFile {
        before,
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// [`raise`] and log the outcome; returns the soft limit in effect, if known.
pub fn raise_and_log() -> Option<libc::rlim_t> {
    match raise() {
        Ok(n) if n.before != n.soft => {
            tracing::info!(
                from = n.before,
                to = n.soft,
                hard = n.hard,
                "raised the open-file limit"
            );
            Some(n.soft)
        }
        Ok(n) => {
            tracing::info!(soft = n.soft, hard = n.hard, "open-file limit");
            Some(n.soft)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let n = super::raise().expect("getrlimit");
        assert_eq!(n.soft, n.hard);
        assert!(n.soft >= n.before);
    }
}
