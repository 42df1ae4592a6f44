//! The vault: secrets in the OS keychain ([`secrets`]), everything else in the config dir
//! (typed JSON files, all read and written through [`file::JsonFile`]; [`store`] is one).

pub mod file;
pub mod keychain;
pub mod paths;
pub mod secrets;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

pub use file::{write_private, FileError, JsonFile};
pub use keychain::{Keychain, KeychainError};
pub use paths::Home;
pub use secrets::{MemorySecrets, SecretStore};

use crate::oauth::client::ClientKey;
pub use store::{ClientRecord, KeyedServer, OpenServer, Placement, Registry, ServerRecord, ServerState, Store, StoredAuthServer};

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

/// The keychain account holding a client's secret: its issuer and client id.
pub fn client_account(key: &ClientKey) -> String {
    format!("client:{} {}", key.issuer, key.client_id)
}

/// Where versions that kept one client per issuer put its secret.
pub fn legacy_client_account(issuer: &str) -> String {
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

/// A home's two halves together: secrets in a [`SecretStore`], metadata in the [`Store`].
#[derive(Debug)]
pub struct Vault {
    pub home: Home,
    pub secrets: Arc<dyn SecretStore>,
    pub store: Store,
}

impl Vault {
    /// The home with its secrets in the OS keychain.
    pub fn open(home: Home) -> Result<Self, VaultError> {
        let keychain = Arc::new(Keychain::new(home.keychain_service.clone()));
        Self::with_secrets(home, keychain)
    }

    /// The home with its secrets in `secrets` (unit tests pass a [`MemorySecrets`]).
    pub fn with_secrets(home: Home, secrets: Arc<dyn SecretStore>) -> Result<Self, VaultError> {
        home.ensure()?;
        Ok(Self { secrets, store: Store::new(&home.config_dir), home })
    }
}
