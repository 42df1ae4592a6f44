//! Non-secret metadata: the servers a user signed in to and the OAuth clients registered
//! at each authorization server. One JSON file in the config dir (`servers.json`, read and
//! written by [`JsonFile`]: 0600, replaced atomically, a damaged file refused, never reset).
//! No token, verifier or client secret is ever written here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{JsonFile, VaultError};
use crate::oauth::discovery::AuthServerMetadata;

/// A server's sign-in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    SignedIn,
    NeedsLogin,
    SignedOut,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::NeedsLogin => "needs_login",
            Self::SignedOut => "signed_out",
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

/// How the client id was obtained (MCP "Client Registration", in priority order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationKind {
    PreRegistered,
    MetadataDocument,
    Dynamic,
}

/// An OAuth client at one authorization server; its secret, if any, is in the keychain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub issuer: String,
    pub client_id: String,
    pub kind: RegistrationKind,
    pub auth_method: TokenAuthMethod,
    pub has_secret: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

/// One MCP server the user signed in to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub name: String,
    pub url: String,
    /// The audience its tokens are minted for.
    pub resource: String,
    pub issuer: String,
    pub client_id: String,
    pub auth_server: AuthServerMetadata,
    pub state: ServerState,
    /// Scopes granted by the AS (or requested, when the AS did not say).
    pub scopes: Vec<String>,
    pub account: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub issued_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    pub has_refresh_token: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
    /// The last refresh failure that did not end the grant (e.g. the AS was down).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The whole metadata file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerRecord>,
    #[serde(default)]
    pub clients: BTreeMap<String, ClientRecord>,
}

/// The metadata file of one home, cached in memory. Writes through this store update the
/// cache; a change made by another process is noticed within [`RECHECK`] (the proxy reads
/// the registry several times a request, so the file is not `stat`ed each time).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: JsonFile<Registry>,
    cache: Mutex<Option<Cached>>,
    writer: Mutex<()>,
}

#[derive(Debug)]
struct Cached {
    stamp: FileStamp,
    checked: Instant,
    registry: Registry,
}

/// How long the cached registry is trusted before the file is checked again.
const RECHECK: Duration = Duration::from_millis(500);

type FileStamp = Option<(SystemTime, u64)>;

impl Store {
    pub fn new(config_dir: &Path) -> Self {
        let path = config_dir.join("servers.json");
        Self { file: JsonFile::new(&path), path, cache: Mutex::new(None), writer: Mutex::new(()) }
    }

    fn stamp(&self) -> FileStamp {
        std::fs::metadata(&self.path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
    }

    /// Run `f` on the current registry without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&Registry) -> T) -> Result<T, VaultError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_mut() {
            if c.checked.elapsed() < RECHECK {
                return Ok(f(&c.registry));
            }
            let stamp = self.stamp();
            if stamp.is_some() && stamp == c.stamp {
                c.checked = Instant::now();
                return Ok(f(&c.registry));
            }
        }
        let stamp = self.stamp();
        let registry = self.read()?;
        let out = f(&registry);
        *cache = Some(Cached { stamp, checked: Instant::now(), registry });
        Ok(out)
    }

    pub fn load(&self) -> Result<Registry, VaultError> {
        self.with(Registry::clone)
    }

    fn read(&self) -> Result<Registry, VaultError> {
        Ok(self.file.load()?)
    }

    /// Write to a private temporary file, then rename over the old one (refused over a
    /// damaged file).
    pub fn save(&self, registry: &Registry) -> Result<(), VaultError> {
        self.file.save(registry)?;
        self.cache_written(registry.clone());
        Ok(())
    }

    fn cache_written(&self, registry: Registry) {
        let cached = Cached { stamp: self.stamp(), checked: Instant::now(), registry };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(cached);
    }

    /// Load, change, save; one writer at a time within this process.
    pub fn update<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Result<T, VaultError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (out, registry) = self.file.update(|r| (f(r), r.clone()))?;
        self.cache_written(registry);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let path = dir.path().join("servers.json");
        std::fs::write(&path, "{\"servers\": {").unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, VaultError::File(super::super::FileError::Corrupt { .. })), "{err:?}");
        assert!(err.to_string().contains("servers.json is damaged"), "{err}");
        assert!(store.update(|r| r.servers.clear()).is_err());
        assert!(store.save(&Registry::default()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"servers\": {");
    }

    #[test]
    fn a_file_of_before_versions_loads_and_is_written_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let path = dir.path().join("servers.json");
        std::fs::write(&path, "{\n  \"servers\": {},\n  \"clients\": {}\n}").unwrap();
        assert!(store.load().unwrap().servers.is_empty());
        store.update(|r| r.clients.clear()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"version\": 1,\n  \"servers\": {},\n  \"clients\": {}\n}");
    }
}
