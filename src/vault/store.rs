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
use crate::oauth::client::{Client, ClientKey, Endpoints, RegistrationKind, TokenAuthMethod};
use crate::oauth::discovery::AuthServerMetadata;
use crate::oauth::quirks::Quirks;
use crate::oauth::tokens::Issued;

/// A server's sign-in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    SignedIn,
    NeedsLogin,
    SignedOut,
    /// Reached with an API key the user gave (a [`KeyedServer`]), not with OAuth.
    ApiKey,
    /// Asks for no sign-in (an [`OpenServer`]): reached with no credential.
    Open,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::NeedsLogin => "needs_login",
            Self::SignedOut => "signed_out",
            Self::ApiKey => "api_key",
            Self::Open => "open",
        }
    }
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
    /// Written by a version that kept one client per issuer: its secret is still in the
    /// keychain under the issuer alone ([`super::legacy_client_account`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_secret: bool,
    /// Registered by another tool and imported with its grant (`Broker::import`): its
    /// redirect URIs are that tool's, so it serves the grant it came with and is never
    /// offered to a new sign-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl ClientRecord {
    pub fn new(client: &Client, has_secret: bool, registered_at: OffsetDateTime) -> Self {
        Self {
            issuer: client.issuer.clone(),
            client_id: client.client_id.clone(),
            kind: client.kind,
            auth_method: client.auth_method,
            has_secret,
            registered_at,
            legacy_secret: false,
            imported: false,
        }
    }

    pub fn client(&self) -> Client {
        Client { issuer: self.issuer.clone(), client_id: self.client_id.clone(), kind: self.kind, auth_method: self.auth_method }
    }

    pub fn key(&self) -> ClientKey {
        ClientKey { issuer: self.issuer.clone(), client_id: self.client_id.clone() }
    }
}

/// The key of a client in [`Registry::clients`]: issuer and client id (a URL has no space).
pub fn client_map_key(key: &ClientKey) -> String {
    format!("{} {}", key.issuer, key.client_id)
}

/// What the vault keeps of an authorization server's metadata: the endpoints a signed-in
/// server needs later (refresh, revocation). Its own type, so that what discovery parses
/// can change without changing the file; unknown fields of older files are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAuthServer {
    pub issuer: String,
    pub authorization_endpoint: url::Url,
    pub token_endpoint: url::Url,
    #[serde(default)]
    pub revocation_endpoint: Option<url::Url>,
}

impl From<&AuthServerMetadata> for StoredAuthServer {
    fn from(m: &AuthServerMetadata) -> Self {
        Self {
            issuer: m.issuer.clone(),
            authorization_endpoint: m.authorization_endpoint.clone(),
            token_endpoint: m.token_endpoint.clone(),
            revocation_endpoint: m.revocation_endpoint.clone(),
        }
    }
}

impl StoredAuthServer {
    pub fn endpoints(&self) -> Endpoints {
        Endpoints { authorization: self.authorization_endpoint.clone(), token: self.token_endpoint.clone(), revocation: self.revocation_endpoint.clone() }
    }
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
    pub auth_server: StoredAuthServer,
    pub state: ServerState,
    /// Scopes granted by the AS (or requested, when the AS did not say).
    pub scopes: Vec<String>,
    pub account: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub issued_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    pub has_refresh_token: bool,
    /// The last refresh failure that did not end the grant (e.g. the AS was down).
    #[serde(default)]
    pub last_error: Option<String>,
    /// How its authorization server departs from the textbook (`login` settings).
    #[serde(default, skip_serializing_if = "is_default")]
    pub quirks: Quirks,
}

fn is_default(q: &Quirks) -> bool {
    *q == Quirks::default()
}

/// Where a signed-in server lives and which client its grant belongs to.
#[derive(Debug, Clone)]
pub struct Placement {
    pub name: String,
    pub url: String,
    pub resource: String,
    pub client: ClientKey,
    pub auth_server: StoredAuthServer,
    pub quirks: Quirks,
}

/// The transitions of a server's state. Every change of `state` goes through one of these.
impl ServerRecord {
    /// A fresh sign-in: signed in with what `issued` says (or `requested`, when the AS did
    /// not say which scopes it granted).
    pub fn signed_in(at: Placement, issued: &Issued, requested: &[String], account: Option<String>) -> Self {
        Self {
            name: at.name,
            url: at.url,
            resource: at.resource,
            issuer: at.client.issuer,
            client_id: at.client.client_id,
            auth_server: at.auth_server,
            state: ServerState::SignedIn,
            scopes: issued.scopes.clone().unwrap_or_else(|| requested.to_vec()),
            account,
            issued_at: Some(issued.issued_at),
            expires_at: issued.expires_at,
            has_refresh_token: issued.tokens.refresh_token.is_some(),
            last_error: None,
            quirks: at.quirks,
        }
    }

    /// A refresh succeeded. `unsaved` says why the new tokens are only in memory so far.
    pub fn refreshed(&mut self, issued: &Issued, unsaved: Option<String>) {
        self.state = ServerState::SignedIn;
        self.issued_at = Some(issued.issued_at);
        self.expires_at = issued.expires_at;
        self.has_refresh_token = issued.tokens.refresh_token.is_some();
        self.last_error = unsaved;
        if let Some(scopes) = &issued.scopes {
            self.scopes = scopes.clone();
        }
    }

    /// The grant is gone (refused, expired, no refresh token): a new sign-in is needed.
    /// Everything else (URL, client, endpoints, scopes) is kept for that sign-in.
    pub fn needs_login(&mut self, why: impl Into<String>) {
        if self.state != ServerState::SignedOut {
            self.state = ServerState::NeedsLogin;
        }
        self.last_error = Some(why.into());
    }

    /// A failure that does not end the grant (the AS was down, the keychain locked).
    pub fn failed(&mut self, why: impl Into<String>) {
        self.last_error = Some(why.into());
    }

    /// The user signed out: no tokens are held any more.
    pub fn signed_out(&mut self) {
        self.state = ServerState::SignedOut;
        self.issued_at = None;
        self.expires_at = None;
        self.has_refresh_token = false;
        self.last_error = None;
    }

    /// The key of the client its grant belongs to.
    pub fn client_key(&self) -> ClientKey {
        ClientKey { issuer: self.issuer.clone(), client_id: self.client_id.clone() }
    }
}

/// A server that takes an API key instead of OAuth: the headers that carry the key are
/// named here, their values are in the keychain ([`super::server_account`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedServer {
    pub name: String,
    pub url: String,
    /// The header names, e.g. `Authorization` or `X-Api-Key`.
    pub headers: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A server that asks for no sign-in: its first request, sent without a credential, was
/// answered, and it publishes no protected resource metadata. Hosts reach it through the
/// broker all the same (consent, policy and audit), with nothing attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenServer {
    pub name: String,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// The whole metadata file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerRecord>,
    /// Clients by [`client_map_key`]. Files of older versions keyed them by issuer alone;
    /// they are re-keyed as they are read ([`rekey_clients`]).
    #[serde(default, deserialize_with = "rekey_clients")]
    pub clients: BTreeMap<String, ClientRecord>,
    /// Servers reached with an API key, by name (names are unique across both maps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keyed: BTreeMap<String, KeyedServer>,
    /// Servers that ask for no sign-in, by name (unique across the three maps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub open: BTreeMap<String, OpenServer>,
}

impl Registry {
    pub fn client(&self, key: &ClientKey) -> Option<&ClientRecord> {
        self.clients.get(&client_map_key(key))
    }

    pub fn insert_client(&mut self, record: ClientRecord) {
        self.clients.insert(client_map_key(&record.key()), record);
    }

    pub fn remove_client(&mut self, key: &ClientKey) -> Option<ClientRecord> {
        self.clients.remove(&client_map_key(key))
    }

    /// The clients registered at `issuer`.
    pub fn clients_at<'a>(&'a self, issuer: &'a str) -> impl Iterator<Item = &'a ClientRecord> + 'a {
        self.clients.values().filter(move |c| c.issuer == issuer)
    }
}

/// Read the clients map, re-keying entries of the one-client-per-issuer layout: such an
/// entry's secret is still under the issuer's keychain account, so it is flagged.
fn rekey_clients<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, ClientRecord>, D::Error> {
    let raw = BTreeMap::<String, ClientRecord>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(key, mut record)| {
            if key == record.issuer {
                record.legacy_secret = record.has_secret;
            }
            (client_map_key(&record.key()), record)
        })
        .collect())
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
    use crate::oauth::tokens::TokenSet;
    use oauth2::{AccessToken, RefreshToken};

    fn issued(scopes: Option<&[&str]>, refresh: bool) -> Issued {
        let now = OffsetDateTime::now_utc();
        Issued {
            tokens: TokenSet { access_token: AccessToken::new("a".into()), refresh_token: refresh.then(|| RefreshToken::new("r".into())) },
            issued_at: now,
            expires_at: Some(now + time::Duration::hours(1)),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
        }
    }

    fn record() -> ServerRecord {
        let at = Placement {
            name: "a".into(),
            url: "https://a.example/mcp".into(),
            resource: "https://a.example/mcp".into(),
            client: ClientKey { issuer: "https://as.example".into(), client_id: "c".into() },
            auth_server: StoredAuthServer {
                issuer: "https://as.example".into(),
                authorization_endpoint: "https://as.example/authorize".parse().unwrap(),
                token_endpoint: "https://as.example/token".parse().unwrap(),
                revocation_endpoint: None,
            },
            quirks: Quirks::default(),
        };
        ServerRecord::signed_in(at, &issued(None, true), &["read".into()], None)
    }

    #[test]
    fn signed_in_takes_the_granted_scopes_or_else_the_requested() {
        let r = record();
        assert_eq!((r.state, r.scopes.clone(), r.has_refresh_token), (ServerState::SignedIn, vec!["read".to_owned()], true));
        assert_eq!(r.client_key().client_id, "c");
        let mut r2 = r.clone();
        r2.refreshed(&issued(Some(&["read", "write"]), false), None);
        assert_eq!((r2.scopes, r2.has_refresh_token), (vec!["read".to_owned(), "write".to_owned()], false));
    }

    #[test]
    fn needs_login_keeps_everything_but_the_state_and_never_revives_a_signed_out_server() {
        let mut r = record();
        let before = r.clone();
        r.needs_login("revoked");
        assert_eq!((r.state, r.last_error.as_deref()), (ServerState::NeedsLogin, Some("revoked")));
        assert_eq!((r.url, r.auth_server, r.scopes, r.client_id), (before.url, before.auth_server, before.scopes, before.client_id));
        let mut out = record();
        out.signed_out();
        out.needs_login("late 401");
        assert_eq!(out.state, ServerState::SignedOut);
    }

    #[test]
    fn a_failure_keeps_the_state_and_a_refresh_clears_the_error() {
        let mut r = record();
        r.failed("AS down");
        assert_eq!((r.state, r.last_error.as_deref()), (ServerState::SignedIn, Some("AS down")));
        r.refreshed(&issued(None, true), None);
        assert_eq!(r.last_error, None);
        r.signed_out();
        assert_eq!((r.state, r.expires_at, r.has_refresh_token), (ServerState::SignedOut, None, false));
    }

    #[test]
    fn clients_of_one_issuer_do_not_collide_and_old_files_are_rekeyed() {
        let c = |id: &str| ClientRecord {
            issuer: "https://as.example".into(),
            client_id: id.into(),
            kind: RegistrationKind::Dynamic,
            auth_method: TokenAuthMethod::None,
            has_secret: true,
            registered_at: OffsetDateTime::UNIX_EPOCH,
            legacy_secret: false,
            imported: false,
        };
        let mut reg = Registry::default();
        reg.insert_client(c("one"));
        reg.insert_client(c("two"));
        assert_eq!(reg.clients_at("https://as.example").count(), 2);
        let old = serde_json::json!({ "clients": { "https://as.example": serde_json::to_value(c("one")).unwrap() } });
        let read: Registry = serde_json::from_value(old).unwrap();
        let key = ClientKey { issuer: "https://as.example".into(), client_id: "one".into() };
        assert!(read.client(&key).unwrap().legacy_secret);
        let again: Registry = serde_json::from_value(serde_json::to_value(&read).unwrap()).unwrap();
        assert!(again.client(&key).unwrap().legacy_secret, "the flag stays until the secret has moved");
    }

    #[test]
    fn stored_metadata_reads_files_that_kept_all_of_discoverys_fields() {
        let json = r#"{"issuer":"https://as.example","authorization_endpoint":"https://as.example/a","token_endpoint":"https://as.example/t","scopes_supported":["x"],"client_id_metadata_document_supported":true}"#;
        let s: StoredAuthServer = serde_json::from_str(json).unwrap();
        assert_eq!((s.endpoints().token.as_str(), s.revocation_endpoint), ("https://as.example/t", None));
    }

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
