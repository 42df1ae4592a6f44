//! Where secrets live: the [`SecretStore`] trait, implemented by the OS [`Keychain`] and,
//! for unit tests of the sign-in lifecycle, by [`MemorySecrets`].
//!
//! Accounts are strings the vault names (see [`super::server_account`] and
//! [`super::client_account`]); values are [`Secret`]s, never printed.
//!
//! [`Keychain`]: super::Keychain

use std::collections::HashMap;
use std::sync::Mutex;

use super::KeychainError;
use crate::secret::Secret;

/// A store of secrets by account.
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// Read a secret; `None` when there is no such entry.
    fn get(&self, account: &str) -> Result<Option<Secret>, KeychainError>;
    /// Write a secret, replacing any old value.
    fn set(&self, account: &str, secret: &Secret) -> Result<(), KeychainError>;
    /// Delete a secret; deleting what is not there is fine.
    fn delete(&self, account: &str) -> Result<(), KeychainError>;
    /// Whether a write would succeed now (the store is there and unlocked).
    fn check_writable(&self) -> Result<(), KeychainError>;
}

impl SecretStore for super::Keychain {
    fn get(&self, account: &str) -> Result<Option<Secret>, KeychainError> {
        super::Keychain::get(self, account)
    }
    fn set(&self, account: &str, secret: &Secret) -> Result<(), KeychainError> {
        super::Keychain::set(self, account, secret)
    }
    fn delete(&self, account: &str) -> Result<(), KeychainError> {
        super::Keychain::delete(self, account)
    }
    fn check_writable(&self) -> Result<(), KeychainError> {
        super::Keychain::check_writable(self)
    }
}

/// Secrets in memory only, for tests: nothing survives the process. [`MemorySecrets::lock`]
/// makes it behave like a locked keychain (reads of what was read before still work).
#[derive(Debug, Default)]
pub struct MemorySecrets {
    entries: Mutex<HashMap<String, Secret>>,
    locked: std::sync::atomic::AtomicBool,
}

impl MemorySecrets {
    /// Refuse writes from now on (`true`) or accept them again (`false`).
    pub fn lock(&self, locked: bool) {
        self.locked.store(locked, std::sync::atomic::Ordering::SeqCst);
    }

    /// The accounts that hold a secret, sorted.
    pub fn accounts(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map().keys().cloned().collect();
        v.sort();
        v
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Secret>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<(), KeychainError> {
        if self.locked.load(std::sync::atomic::Ordering::SeqCst) { Err(KeychainError::Locked) } else { Ok(()) }
    }
}

impl SecretStore for MemorySecrets {
    fn get(&self, account: &str) -> Result<Option<Secret>, KeychainError> {
        Ok(self.map().get(account).cloned())
    }
    fn set(&self, account: &str, secret: &Secret) -> Result<(), KeychainError> {
        self.writable()?;
        self.map().insert(account.to_owned(), secret.clone());
        Ok(())
    }
    fn delete(&self, account: &str) -> Result<(), KeychainError> {
        self.writable()?;
        self.map().remove(account);
        Ok(())
    }
    fn check_writable(&self) -> Result<(), KeychainError> {
        self.writable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trip_and_lock() {
        let m = MemorySecrets::default();
        m.set("a", &Secret::new("1")).unwrap();
        assert_eq!(m.get("a").unwrap().unwrap().expose(), "1");
        m.lock(true);
        assert!(matches!(m.set("a", &Secret::new("2")), Err(KeychainError::Locked)));
        assert!(m.check_writable().is_err());
        assert_eq!(m.get("a").unwrap().unwrap().expose(), "1");
        m.lock(false);
        m.delete("a").unwrap();
        m.delete("a").unwrap();
        assert!(m.get("a").unwrap().is_none());
    }
}
