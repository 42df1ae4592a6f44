//! Which programs the user runs now, by name: a host that is running must be restarted to
//! read a config file the broker rewrote. Linux reads `/proc` (the command name and the
//! first two words of the command line, since CLIs on Node run as `node …/claude`); a
//! hand-written scan, because a process-table crate would be all this for one question.
//! Elsewhere nothing is known, which callers treat as "maybe running".

/// The programs running under this user whose names are in `names`; `None` where the
/// platform cannot tell.
pub fn running(names: &[&str]) -> Option<Vec<String>> {
    #[cfg(target_os = "linux")]
    {
        Some(linux::running(names))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = names;
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::MetadataExt;

    pub fn running(names: &[&str]) -> Vec<String> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        let mut found: Vec<String> = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else { return found };
        for entry in dir.flatten() {
            let pid_dir = entry.path();
            if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if std::fs::metadata(&pid_dir).map(|m| m.uid()).ok() != Some(me) {
                continue;
            }
            for name in program_names(&pid_dir) {
                if names.contains(&name.as_str()) && !found.contains(&name) {
                    found.push(name);
                }
            }
        }
        found.sort();
        found
    }

    /// The command name and the base names of the first two command-line words.
    fn program_names(pid_dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(comm) = std::fs::read_to_string(pid_dir.join("comm")) {
            out.push(comm.trim_end().to_owned());
        }
        if let Ok(cmdline) = std::fs::read(pid_dir.join("cmdline")) {
            for word in cmdline.split(|b| *b == 0).take(2) {
                let word = String::from_utf8_lossy(word);
                if let Some(base) = word.rsplit('/').next().filter(|b| !b.is_empty()) {
                    out.push(base.to_owned());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn finds_this_test_program_and_not_a_made_up_one() {
        let me = std::env::current_exe().unwrap();
        let name = me.file_name().unwrap().to_string_lossy().into_owned();
        let found = super::running(&[name.as_str(), "no-such-program-xyz"]).unwrap();
        assert_eq!(found, [name]);
    }
}
