//! The host behind a stdio bridge: the process that launched it.

/// The host's name: the executable of the process that launched the bridge.
pub fn parent_name() -> String {
    #[cfg(target_os = "linux")]
    {
        let ppid = std::os::unix::process::parent_id();
        let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let comm = || std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok().map(|s| s.trim().to_owned());
        if let Some(name) = exe.or_else(comm).filter(|n| !n.is_empty()) {
            return name;
        }
    }
    "unknown".to_owned()
}
