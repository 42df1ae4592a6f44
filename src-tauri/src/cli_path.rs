//! Where the `mcp-broker` command line is: the program a host's rewritten entry runs
//! (`mcp-broker connect URL --host HOST`). The app runs the service in its own process and
//! never starts the CLI, so it has to find it: beside the app's own program first (the
//! `.deb` installs both in `/usr/bin`, a build puts both in `target/…/`), then on `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The CLI's file name here.
pub const CLI_NAME: &str = if cfg!(windows) { "mcp-broker.exe" } else { "mcp-broker" };

/// Where to look for the CLI.
#[derive(Debug, Clone, Default)]
pub struct CliSearch {
    /// The folder of the app's own program.
    pub beside: Option<PathBuf>,
    /// A `PATH` value.
    pub path: Option<OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot find the mcp-broker command line (looked beside the app{}, and on PATH): install it, or put it on PATH", .beside.as_ref().map(|b| format!(" in {}", b.display())).unwrap_or_default())]
pub struct CliNotFound {
    pub beside: Option<PathBuf>,
}

impl CliSearch {
    /// This process's: the folder of its program, and its `PATH`.
    pub fn from_env() -> Self {
        let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_owned));
        Self { beside, path: std::env::var_os("PATH") }
    }

    /// The first `mcp-broker` program beside the app, then in `PATH`'s folders (absolute
    /// ones only: a relative folder would mean whatever the current directory holds).
    pub fn find(&self) -> Result<PathBuf, CliNotFound> {
        let on_path = self.path.iter().flat_map(std::env::split_paths).filter(|d| d.is_absolute());
        self.beside
            .iter()
            .cloned()
            .chain(on_path)
            .map(|dir| dir.join(CLI_NAME))
            .find(|p| is_program(p))
            .ok_or_else(|| CliNotFound { beside: self.beside.clone() })
    }
}

/// A file this user may run.
fn is_program(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(dir: &Path, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(CLI_NAME);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn beside_the_app_comes_before_path() {
        let t = tempfile::tempdir().unwrap();
        let app = program(&t.path().join("app"), 0o755);
        program(&t.path().join("bin"), 0o755);
        let path = std::env::join_paths([t.path().join("bin")]).unwrap();
        let s = CliSearch { beside: Some(t.path().join("app")), path: Some(path) };
        assert_eq!(s.find(), Ok(app));
    }

    #[test]
    fn path_is_searched_in_order_skipping_what_cannot_run() {
        let t = tempfile::tempdir().unwrap();
        program(&t.path().join("a"), 0o644);
        let b = program(&t.path().join("b"), 0o700);
        let path = std::env::join_paths([Path::new("relative"), &t.path().join("a"), &t.path().join("b")]).unwrap();
        let s = CliSearch { beside: Some(t.path().join("nothing-here")), path: Some(path) };
        assert_eq!(s.find(), Ok(b));
    }

    #[test]
    fn not_found_says_where_it_looked() {
        let s = CliSearch { beside: Some("/opt/app".into()), path: None };
        let e = s.find().unwrap_err();
        assert!(e.to_string().contains("beside the app in /opt/app, and on PATH"), "{e}");
    }
}
