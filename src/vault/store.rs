//! Non-secret metadata: the servers a user signed in to and the OAuth clients registered
//! at each authorization server. One JSON file in the config dir, mode 0600, replaced
//! atomically. No token, verifier or client secret is ever written here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::VaultError;
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
        Self { path: config_dir.join("servers.json"), cache: Mutex::new(None), writer: Mutex::new(()) }
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
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| VaultError::Corrupt(self.path.clone(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(VaultError::Io(self.path.clone(), e)),
        }
    }

    /// Write to a private temporary file, then rename over the old one.
    pub fn save(&self, registry: &Registry) -> Result<(), VaultError> {
        let json = serde_json::to_vec_pretty(registry).map_err(|e| VaultError::Corrupt(self.path.clone(), e.to_string()))?;
        super::write_private(&self.path, &json).map_err(|e| VaultError::Io(self.path.clone(), e))?;
        let cached = Cached { stamp: self.stamp(), checked: Instant::now(), registry: registry.clone() };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(cached);
        Ok(())
    }

    /// Load, change, save; one writer at a time within this process.
    pub fn update<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Result<T, VaultError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = self.read()?;
        let out = f(&mut r);
        self.save(&r)?;
        Ok(out)
    }
}
