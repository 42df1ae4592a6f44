//! Hosts: the local programs that use the broker, and the keys HTTP hosts present.
//!
//! A host that speaks Streamable HTTP gets a named key (`mcp-broker hosts add vscode`),
//! shown once and kept in the keychain (`host:<name>`); the service holds only the keys'
//! SHA-256 digests in memory and looks a presented key's digest up among them: one hash and
//! one map lookup per request, however many hosts, and what timing could tell about a digest
//! says nothing about a key. A key serves only the user's own programs unless its host was
//! added for any user (`--any-user`: an agent run under an account of its own); the
//! endpoint checks who connects ([`crate::platform::peer`]). Bridge hosts are named by their parent
//! process instead and need no key: the control socket is private to the user.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::Secret;
use crate::vault::{self, Keychain, KeychainError};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("a host named {0:?} exists already; remove it first to make a new key")]
    Exists(String),
    #[error("no host named {0:?}; see `mcp-broker hosts list`")]
    Unknown(String),
    #[error("{0:?} is not a valid host name (use letters, digits, '.', '-' or '_', at most 64)")]
    BadName(String),
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, String),
}

/// A host with an HTTP key (the key itself is never part of this).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostInfo {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Programs of other users may present this host's key (by default only the user's own).
    #[serde(default)]
    pub any_user: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HostsFile {
    #[serde(default)]
    hosts: BTreeMap<String, HostInfo>,
}

/// The HTTP hosts of one home.
pub struct Hosts {
    path: PathBuf,
    keychain: Keychain,
    /// Hosts by the SHA-256 of their key; `None` until the keys could be read (the keychain
    /// may be locked at start).
    keys: RwLock<Option<HashMap<KeyDigest, HostInfo>>>,
}

impl Hosts {
    /// Open the host list. The keys are read from the keychain on first use: a locked
    /// keychain does not keep the service from starting, and starting costs no D-Bus calls.
    pub fn open(config_dir: &Path, keychain_service: &str) -> Result<Self, HostError> {
        Ok(Self { path: config_dir.join("hosts.json"), keychain: Keychain::new(keychain_service), keys: RwLock::new(None) })
    }

    fn load_keys(&self) -> Result<(), HostError> {
        let mut keys = HashMap::new();
        for (name, info) in self.read()?.hosts {
            if let Some(key) = self.keychain.get(&account(&name))? {
                keys.insert(digest(key.expose()), info);
            }
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(keys);
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<HostInfo>, HostError> {
        Ok(self.read()?.hosts.into_values().collect())
    }

    /// Create a host and its key; the key is returned once and never shown again. With
    /// `any_user`, other users' programs may present it too.
    pub fn add(&self, name: &str, any_user: bool) -> Result<Secret, HostError> {
        if !vault::valid_name(name) {
            return Err(HostError::BadName(name.to_owned()));
        }
        let mut file = self.read()?;
        if file.hosts.contains_key(name) {
            return Err(HostError::Exists(name.to_owned()));
        }
        let key = new_key();
        self.keychain.set(&account(name), &key)?;
        let info = HostInfo { name: name.to_owned(), created_at: OffsetDateTime::now_utc(), any_user };
        file.hosts.insert(name.to_owned(), info.clone());
        self.write(&file)?;
        if let Some(keys) = self.keys.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            keys.insert(digest(key.expose()), info);
        }
        Ok(key)
    }

    pub fn remove(&self, name: &str) -> Result<(), HostError> {
        let mut file = self.read()?;
        if file.hosts.remove(name).is_none() {
            return Err(HostError::Unknown(name.to_owned()));
        }
        if let Some(keys) = self.keys.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            keys.retain(|_, h| h.name != name);
        }
        self.write(&file)?;
        self.keychain.delete(&account(name))?;
        Ok(())
    }

    /// The host a key belongs to, found by the key's digest (see the module doc). Fails when
    /// the keys cannot be read (a locked keychain).
    pub fn authenticate(&self, presented: &str) -> Result<Option<HostInfo>, HostError> {
        if self.keys.read().unwrap_or_else(|p| p.into_inner()).is_none() {
            self.load_keys()?;
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        Ok(keys.as_ref().and_then(|k| k.get(&digest(presented))).cloned())
    }

    fn read(&self) -> Result<HostsFile, HostError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| HostError::Io(self.path.clone(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostsFile::default()),
            Err(e) => Err(HostError::Io(self.path.clone(), e.to_string())),
        }
    }

    fn write(&self, file: &HostsFile) -> Result<(), HostError> {
        let json = serde_json::to_vec_pretty(file).map_err(|e| HostError::Io(self.path.clone(), e.to_string()))?;
        vault::write_private(&self.path, &json).map_err(|e| HostError::Io(self.path.clone(), e.to_string()))
    }
}

/// A host key's SHA-256: what the service keeps in memory instead of the key.
type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn account(name: &str) -> String {
    format!("host:{name}")
}

/// 256 random bits, base64url, with a recognisable prefix (so secret scanners find leaks).
fn new_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(format!("mcpb_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys: HashMap<KeyDigest, String> = [(digest("mcpb_aaaa"), "a".to_owned()), (digest("mcpb_bbbb"), "b".to_owned())].into();
        assert_eq!(keys.get(&digest("mcpb_bbbb")).map(String::as_str), Some("b"));
        for wrong in ["", "mcpb_bbb", "mcpb_bbbbb", "MCPB_BBBB", "mcpb_bbbb ", "mcpb_aaab"] {
            assert_eq!(keys.get(&digest(wrong)), None, "{wrong:?}");
        }
        assert!(new_key().expose().starts_with("mcpb_") && new_key().expose().len() == 48);
        assert!(!new_key().matches(new_key().expose()));
    }
}
