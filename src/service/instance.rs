//! One service per user: a lock file held for the service's lifetime, the control socket
//! beside it (mode 0600), and the TCP port chosen once and kept (in `service.json`, a
//! [`JsonFile`]: damaged, it is refused, not reset).

use std::fs::File;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::vault::{FileError, Home, JsonFile};

/// The files that make a service instance.
#[derive(Debug, Clone)]
pub struct Paths {
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
    pub settings: PathBuf,
}

impl Paths {
    pub fn of(home: &Home) -> Self {
        Self {
            socket: home.runtime_dir.join("broker.sock"),
            lock: home.runtime_dir.join("broker.lock"),
            log: home.runtime_dir.join("service.log"),
            settings: home.config_dir.join("service.json"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("an mcp-broker service is already running for this home")]
    AlreadyRunning,
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// `service.json` is damaged, newer or cannot be written.
    #[error(transparent)]
    Settings(#[from] FileError),
}

/// Take the instance lock; it is released when the returned file is dropped (or the
/// process dies, so a crash never leaves a stale lock).
pub fn lock(paths: &Paths) -> Result<File, InstanceError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
        .map_err(|e| InstanceError::Io(paths.lock.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(InstanceError::AlreadyRunning),
        Err(std::fs::TryLockError::Error(e)) => Err(InstanceError::Io(paths.lock.clone(), e)),
    }
}

/// Whether a service holds the instance lock now. A stopping service holds it until it has
/// written its last audit entries and exited, though its socket no longer answers.
pub fn is_held(paths: &Paths) -> bool {
    matches!(lock(paths), Err(InstanceError::AlreadyRunning))
}

/// Settings the service keeps across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// The loopback port of the HTTP endpoint; hosts are configured with it, so it stays.
    pub port: Option<u16>,
}

impl Settings {
    fn file(paths: &Paths) -> JsonFile<Settings> {
        JsonFile::new(&paths.settings)
    }

    /// The kept settings (the defaults when there are none); a damaged file is an error.
    pub fn load(paths: &Paths) -> Result<Settings, InstanceError> {
        Ok(Self::file(paths).load()?)
    }

    /// Keep the settings; refused over a damaged file.
    pub fn save(&self, paths: &Paths) -> Result<(), InstanceError> {
        Ok(Self::file(paths).save(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &std::path::Path) -> Paths {
        let p = |n: &str| dir.join(n);
        Paths { socket: p("broker.sock"), lock: p("broker.lock"), log: p("service.log"), settings: p("service.json") }
    }

    #[test]
    fn damaged_settings_are_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        assert_eq!(Settings::load(&paths).unwrap().port, None);
        std::fs::write(&paths.settings, r#"{"port": 41000}"#).unwrap();
        assert_eq!(Settings::load(&paths).unwrap().port, Some(41000), "a file of before versions");
        std::fs::write(&paths.settings, r#"{"port": "x"}"#).unwrap();
        let err = Settings::load(&paths).unwrap_err();
        assert!(err.to_string().contains("service.json is damaged"), "{err}");
        assert!(Settings { port: Some(1) }.save(&paths).is_err());
        assert_eq!(std::fs::read_to_string(&paths.settings).unwrap(), r#"{"port": "x"}"#);
    }
}
