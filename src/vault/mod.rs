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
/// with `.` or `-` (they appear in keychain accounts, URLs and command lines); a server
/// signed in to with another account is `NAME@ACCOUNT`, both parts so.
pub fn valid_name(name: &str) -> bool {
    let (base, account) = name.split_once('@').unwrap_or((name, "_"));
    let part = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && !p.starts_with(['.', '-']);
    name.len() <= 64 && part(base) && part(account)
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

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_may_have_one_account_part() {
        for ok in ["linear", "mcp.linear.app", "a_b-c", "linear@work", "linear@alice.smith"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "@work", "linear@", "a@b@c", "linear@-x", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
