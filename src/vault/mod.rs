//! The vault: secrets in the OS keychain, everything else in the config dir.

pub mod keychain;
pub mod paths;
pub mod store;

use std::path::PathBuf;

pub use keychain::{Keychain, KeychainError};
pub use paths::Home;

pub use store::{ClientRecord, Registry, RegistrationKind, ServerRecord, ServerState, Store, TokenAuthMethod};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is damaged ({1}); move it aside to start over")]
    Corrupt(PathBuf, String),
    #[error("cannot find a home directory; set MCP_BROKER_HOME")]
    NoHomeDir,
}

/// The keychain account holding a server's token set.
pub fn server_account(name: &str) -> String {
    format!("server:{name}")
}

/// The keychain account holding the client secret registered at `issuer`.
pub fn client_account(issuer: &str) -> String {
    format!("client:{issuer}")
}

/// Names of servers and hosts: letters, digits, `.`, `-`, `_`, at most 64, not starting
/// with `.` or `-` (they appear in keychain accounts, URLs and command lines).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with(['.', '-'])
}

/// Write a file readable by the user only, replacing the old one atomically.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A home's two halves together.
#[derive(Debug)]
pub struct Vault {
    pub home: Home,
    pub keychain: Keychain,
    pub store: Store,
}

impl Vault {
    pub fn open(home: Home) -> Result<Self, VaultError> {
        home.ensure()?;
        Ok(Self { keychain: Keychain::new(home.keychain_service.clone()), store: Store::new(&home.config_dir), home })
    }
}
