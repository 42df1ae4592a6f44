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
//!
//! The host list is `hosts.json` ([`JsonFile`]); while it is damaged no key is accepted
//! and none is made, and the file is left for the user to fix.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::RwLock;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::Secret;
use crate::vault::{self, FileError, JsonFile, Keychain, KeychainError};

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
    /// `hosts.json` is damaged, newer or cannot be written (it is never reset).
    #[error(transparent)]
    File(#[from] FileError),
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
    file: JsonFile<HostsFile>,
    keychain: Keychain,
    /// Hosts by the SHA-256 of their key; `None` until the keys could be read (the keychain
    /// may be locked at start).
    keys: RwLock<Option<HashMap<KeyDigest, HostInfo>>>,
}

impl Hosts {
    /// Open the host list. The keys are read from the keychain on first use: a locked
    /// keychain does not keep the service from starting, and starting costs no D-Bus calls.
    pub fn open(config_dir: &Path, keychain_service: &str) -> Result<Self, HostError> {
        Ok(Self { file: JsonFile::new(config_dir.join("hosts.json")), keychain: Keychain::new(keychain_service), keys: RwLock::new(None) })
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

    /// What is wrong with `hosts.json`, if anything (it is read again: it is small).
    pub fn problem(&self) -> Option<FileError> {
        self.file.load().err()
    }

    fn read(&self) -> Result<HostsFile, HostError> {
        Ok(self.file.load()?)
    }

    fn write(&self, file: &HostsFile) -> Result<(), HostError> {
        Ok(self.file.save(file)?)
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

    #[test]
    fn a_damaged_host_list_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.json");
        std::fs::write(&path, "{\"hosts\": nope").unwrap();
        let hosts = Hosts::open(dir.path(), "mcp-broker-test-unused").unwrap();
        let is_damaged = |e: HostError| matches!(e, HostError::File(FileError::Corrupt { .. })) && e.to_string().contains("hosts.json is damaged");
        assert!(is_damaged(hosts.list().unwrap_err()));
        assert!(is_damaged(hosts.add("vscode", false).unwrap_err()), "refused before any key is made");
        assert!(is_damaged(hosts.remove("vscode").unwrap_err()));
        assert!(is_damaged(hosts.authenticate("mcpb_x").unwrap_err()));
        assert!(hosts.problem().is_some());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"hosts\": nope");
        std::fs::remove_file(&path).unwrap();
        assert!(hosts.problem().is_none() && hosts.list().unwrap().is_empty(), "moved aside: a fresh list");
    }
}
