//! One service per user: a lock file held for the service's lifetime, the control socket
//! beside it (mode 0600), and the TCP port chosen once and kept.

use std::fs::File;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::vault::{self, Home};

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
    pub fn load(paths: &Paths) -> Settings {
        std::fs::read(&paths.settings).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn save(&self, paths: &Paths) -> Result<(), InstanceError> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        vault::write_private(&paths.settings, &json).map_err(|e| InstanceError::Io(paths.settings.clone(), e))
    }
}
