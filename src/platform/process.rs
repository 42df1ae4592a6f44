//! What the service asks of the operating system for its own process: that its memory stay
//! its own, and enough open files for every host.
//!
//! The service holds every server's tokens in memory. A core dump would write them to disk,
//! and any process of the same user could read them through `ptrace` or `/proc/PID/mem`
//! (and read `/proc/PID/environ`). Marking the process non-dumpable (as `ssh-agent` and
//! `gpg-agent` do) closes all of these to processes without `CAP_SYS_PTRACE`; the mark is
//! dropped on `exec`, so programs the service starts (the browser) are not affected.

/// Set to `1` to leave the service dumpable, so that a developer's `strace`, `perf` or `gdb`
/// can attach without root.
pub const DUMPABLE_VAR: &str = "MCP_BROKER_DUMPABLE";

/// No core dumps and no same-user `ptrace` or `/proc/PID/{mem,environ}` (Linux); no core
/// dumps (other Unix). Unless [`DUMPABLE_VAR`] is `1`.
pub fn keep_memory_private() {
    if std::env::var(DUMPABLE_VAR).is_ok_and(|v| v == "1") {
        tracing::warn!("{DUMPABLE_VAR}=1: the service can be dumped and traced by the user's other processes");
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!("cannot mark the service non-dumpable: {}", std::io::Error::last_os_error());
        }
    }
    // Elsewhere no core dumps at least (children, such as the browser, inherit this limit).
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
            tracing::warn!("cannot turn off core dumps: {}", std::io::Error::last_os_error());
        }
    }
}

/// Let the service open as many files as the system allows it (the soft limit is often
/// 1024, the hard one far more): each host connection takes one, and so does each upstream
/// connection it needs: `needed` is what they take at most at once.
pub fn raise_fd_limit(needed: usize) {
    #[cfg(unix)]
    {
        // macOS refuses a soft limit above OPEN_MAX (10240) even when the hard one is unlimited.
        let most: libc::rlim_t = if cfg!(target_os = "macos") { 10_240 } else { 65_536 };
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            let want = lim.rlim_max.min(most);
            if lim.rlim_cur < want {
                lim.rlim_cur = want;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                }
            }
        }
        let needed = needed as libc::rlim_t;
        if lim.rlim_cur < needed {
            tracing::warn!("the service may open only {} files; {needed} lets every host connection and its upstream connection open at once (raise `ulimit -n`)", lim.rlim_cur);
        }
    }
}

/// Whether a process still exists (a zombie counts, but it has released its locks by then).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        unsafe { libc::kill(pid, 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}
