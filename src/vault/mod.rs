//! The vault: secrets in the OS keychain, everything else in the config dir.

pub mod keychain;
pub mod paths;
pub mod secret;
pub mod store;

use std::path::PathBuf;

pub use keychain::{Keychain, KeychainError};
pub use paths::Home;
pub use secret::Secret;
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
