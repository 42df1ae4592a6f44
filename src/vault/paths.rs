//! Where mcp-broker keeps things: config, data and runtime directories, and the keychain
//! namespace.
//!
//! `MCP_BROKER_HOME=<dir>` puts everything under `<dir>` and namespaces the keychain
//! entries by its absolute path, so separate homes never see each other's secrets.
//! Without it, the platform's directories come from the `directories` crate.

use std::path::{Path, PathBuf};

use super::VaultError;

/// The keychain service name used for the default home.
pub const SERVICE: &str = "mcp-broker";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// The keychain `service` attribute of every entry of this home.
    pub keychain_service: String,
}

impl Home {
    /// The home chosen by the environment.
    pub fn from_env() -> Result<Self, VaultError> {
        match std::env::var_os("MCP_BROKER_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => Self::at(Path::new(&dir)),
            None => Self::platform(),
        }
    }

    /// Everything under `dir`.
    pub fn at(dir: &Path) -> Result<Self, VaultError> {
        std::fs::create_dir_all(dir).map_err(|e| VaultError::Io(dir.to_owned(), e))?;
        let dir = dir.canonicalize().map_err(|e| VaultError::Io(dir.to_owned(), e))?;
        Ok(Self {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
            runtime_dir: dir.join("run"),
            keychain_service: format!("{SERVICE}:{}", dir.display()),
        })
    }

    fn platform() -> Result<Self, VaultError> {
        let dirs = directories::ProjectDirs::from("", "", SERVICE).ok_or(VaultError::NoHomeDir)?;
        let runtime_dir = dirs.runtime_dir().map(Path::to_owned).unwrap_or_else(|| dirs.cache_dir().join("run"));
        Ok(Self {
            config_dir: dirs.config_dir().to_owned(),
            data_dir: dirs.data_dir().to_owned(),
            runtime_dir,
            keychain_service: SERVICE.to_owned(),
        })
    }

    /// Create the directories, readable by the user only.
    pub fn ensure(&self) -> Result<(), VaultError> {
        for d in [&self.config_dir, &self.data_dir, &self.runtime_dir] {
            create_private_dir(d)?;
        }
        Ok(())
    }
}

fn create_private_dir(d: &Path) -> Result<(), VaultError> {
    std::fs::create_dir_all(d).map_err(|e| VaultError::Io(d.to_owned(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(|e| VaultError::Io(d.to_owned(), e))?;
    }
    Ok(())
}
