//! The vault: secrets in the OS keychain, everything else in the config dir (typed JSON
//! files, all read and written through [`file::JsonFile`]).

pub mod file;
pub mod keychain;
pub mod paths;
pub mod store;

use std::path::PathBuf;

pub use file::{write_private, FileError, JsonFile};
pub use keychain::{Keychain, KeychainError};
pub use paths::Home;

pub use store::{ClientRecord, Registry, RegistrationKind, ServerRecord, ServerState, Store, TokenAuthMethod};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    File(#[from] FileError),
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
