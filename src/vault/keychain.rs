//! Secrets in the OS keychain (Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows), through the `keyring` crate, with an in-memory cache.
//!
//! Entries are `service` = the home's namespace, `username` = `server:<name>` (the token
//! set) or `client:<issuer>` (a client secret). A keychain that is absent or locked is an
//! error that names the fix; there is no plaintext fallback, ever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::Secret;

/// The keychain is unusable, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error("the OS keychain is not reachable: no D-Bus session bus (run inside a desktop session, or start one with dbus-run-session)")]
    NoSessionBus,
    #[error("the OS keychain is not available: no Secret Service is running (install and start gnome-keyring or KeePassXC)")]
    NoSecretService,
    #[error("the OS keychain is locked: unlock it (e.g. log in to the desktop) and try again")]
    Locked,
    #[error("the OS keychain failed: {0}")]
    Other(String),
}

impl From<keyring::Error> for KeychainError {
    fn from(e: keyring::Error) -> Self {
        let text = match &e {
            keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => inner.to_string(),
            other => other.to_string(),
        };
        if text.contains("autolaunch") || text.contains("DBUS_SESSION_BUS_ADDRESS") {
            Self::NoSessionBus
        } else if text.contains("org.freedesktop.secrets") {
            Self::NoSecretService
        } else if ["locked", "unlock", "prompt was dismissed"].iter().any(|w| text.to_lowercase().contains(w)) {
            Self::Locked
        } else {
            Self::Other(text)
        }
    }
}

/// One home's keychain namespace. Reads are cached: a Secret Service read costs tens of ms.
/// The cache holds the newest value: a write the keychain refused (it was locked) stays
/// cached as unsaved, is what `get` answers, and is written again on later use, so a
/// rotated refresh token is never lost nor its predecessor replayed.
#[derive(Debug)]
pub struct Keychain {
    service: String,
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    value: Option<Secret>,
    unsaved: Option<Instant>,
}

/// How often an unsaved secret is offered to the keychain again.
const RETRY_UNSAVED: Duration = Duration::from_secs(5);

impl Keychain {
    pub fn new(service: impl Into<String>) -> Self {
        Self { service: service.into(), cache: Mutex::new(HashMap::new()) }
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry, KeychainError> {
        Ok(keyring::Entry::new(&self.service, account)?)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read a secret; `None` when there is no such entry.
    pub fn get(&self, account: &str) -> Result<Option<Secret>, KeychainError> {
        let hit = self.cache().get(account).cloned();
        match hit {
            Some(Cached { value, unsaved: Some(at) }) => {
                if at.elapsed() >= RETRY_UNSAVED {
                    if let Some(v) = &value {
                        let _ = self.set(account, v);
                    }
                }
                Ok(value)
            }
            Some(Cached { value, unsaved: None }) => Ok(value),
            None => {
                let value = match crate::blocking::run(|| self.entry(account).map(|e| e.get_password()))? {
                    Ok(v) => Some(Secret::new(v)),
                    Err(keyring::Error::NoEntry) => None,
                    Err(e) => return Err(e.into()),
                };
                self.cache().insert(account.to_owned(), Cached { value: value.clone(), unsaved: None });
                Ok(value)
            }
        }
    }

    /// Write a secret. On failure it stays cached as unsaved (see the type's doc) and the
    /// error is returned.
    pub fn set(&self, account: &str, secret: &Secret) -> Result<(), KeychainError> {
        let result = crate::blocking::run(|| self.entry(account).and_then(|e| Ok(e.set_password(secret.expose())?)));
        let unsaved = result.is_err().then(Instant::now);
        self.cache().insert(account.to_owned(), Cached { value: Some(secret.clone()), unsaved });
        result
    }

    /// Delete a secret; deleting what is not there is fine.
    pub fn delete(&self, account: &str) -> Result<(), KeychainError> {
        match crate::blocking::run(|| self.entry(account).map(|e| e.delete_credential()))? {
            Ok(()) | Err(keyring::Error::NoEntry) => {}
            Err(e) => return Err(e.into()),
        }
        self.cache().insert(account.to_owned(), Cached { value: None, unsaved: None });
        Ok(())
    }

    /// Fail early, before any browser opens, when the keychain cannot be written (absent,
    /// locked): a login whose tokens could not be stored would be wasted.
    pub fn check_writable(&self) -> Result<(), KeychainError> {
        crate::blocking::run(|| {
            let entry = self.entry("probe")?;
            entry.set_password("probe")?;
            entry.delete_credential()?;
            Ok(())
        })
    }
}
