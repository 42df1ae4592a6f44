//! The engine's front door: sign in, look, refresh, sign out, and hand out access tokens.
//!
//! Every flow ends the same way: secrets go to the keychain first, then the non-secret
//! record to the config dir, so a crash in between never leaves metadata pointing at
//! tokens that were not stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use oauth2::{AccessToken, RefreshToken};
use time::OffsetDateTime;

use crate::oauth::discovery::{self, DiscoveryError, Discovery};
use crate::oauth::login::{self, scopes, DynProgress, LoginError, Loopback, TokenError};
use crate::net::{FetchError, HttpClient};
use crate::oauth::registration::{self, ClientChoice, Credentials};
use crate::oauth::revocation;
use crate::oauth::tokens::{self, Issued, TokenSet};
use crate::vault::{self, RegistrationKind, ServerRecord, ServerState, Vault, VaultError};

/// Everything that can end an engine call, each a one-line message for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("discovery failed: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("sign-in failed: {0}")]
    Login(#[from] LoginError),
    #[error("no server named {0:?}; see `mcp-broker status`")]
    UnknownServer(String),
    #[error("{0:?} is not a valid server name (use letters, digits, '.', '-' or '_', at most 64)")]
    BadName(String),
    #[error("the name {name:?} is taken by {url}; choose another with --name")]
    NameTaken { name: String, url: String },
    #[error("{0} is not signed in; run `mcp-broker login {0}`")]
    NotSignedIn(String),
    #[error("refreshing {name} failed: {source}")]
    Refresh { name: String, source: TokenError },
    #[error("could not revoke the tokens of {name} at the authorization server ({reason}); nothing was deleted: retry, or pass --local to forget them anyway")]
    Revoke { name: String, reason: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// A login request, as the CLI (and later the service) makes it.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub url: String,
    pub name: Option<String>,
    pub client: ClientChoice,
    /// Scopes to add to the selected ones (step-up or the user's wish).
    pub extra_scopes: Vec<String>,
    pub timeout: Option<Duration>,
}

/// What logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutReport {
    pub revoked: bool,
}

pub struct Broker {
    vault: Vault,
    http: HttpClient,
    flights: Flights,
}

/// One async lock per server: a refresh, a login or a step-up for a server happens once,
/// and everyone else asking meanwhile waits for its result.
#[derive(Default)]
struct Flights(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Flights {
    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default().clone();
        m.lock_owned().await
    }
}

impl Broker {
    pub fn open(home: vault::Home) -> Result<Self, Error> {
        Ok(Self { vault: Vault::open(home)?, http: HttpClient::new()?, flights: Flights::default() })
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// All known servers, by name.
    pub fn servers(&self) -> Result<Vec<ServerRecord>, Error> {
        Ok(self.vault.store.with(|r| r.servers.values().cloned().collect())?)
    }

    /// One server's record.
    pub fn server(&self, name: &str) -> Result<ServerRecord, Error> {
        self.with_server(name, ServerRecord::clone)
    }

    /// Read one field or two of a server's record without copying all of it (the hot path).
    pub fn with_server<T>(&self, name: &str, f: impl FnOnce(&ServerRecord) -> T) -> Result<T, Error> {
        self.vault.store.with(|r| r.servers.get(name).map(f))?.ok_or_else(|| Error::UnknownServer(name.to_owned()))
    }

    /// Discover, register, sign in through the browser, store. Nothing is stored unless
    /// every step succeeds.
    pub async fn login(&self, req: &LoginRequest, progress: &DynProgress) -> Result<ServerRecord, Error> {
        self.vault.keychain.check_writable().map_err(VaultError::from)?;
        let discovery = discovery::discover(&self.http, &req.url).await?;
        let name = self.choose_name(req, &discovery)?;
        let _flight = self.flights.lock(&name).await;
        self.login_as(&name, &discovery, req, progress).await
    }

    /// Make sure `name` is signed in, signing in through the browser if not. Concurrent
    /// callers share one login. Returns the server's record.
    pub async fn ensure_signed_in(&self, name: &str, req: &LoginRequest, progress: &DynProgress) -> Result<ServerRecord, Error> {
        let _flight = self.flights.lock(name).await;
        if let Some(record) = self.usable(name)? {
            return Ok(record);
        }
        self.vault.keychain.check_writable().map_err(VaultError::from)?;
        let discovery = discovery::discover(&self.http, &req.url).await?;
        self.login_as(name, &discovery, req, progress).await
    }

    /// Step-up (MCP "Step-Up Authorization Flow"): sign in again asking for `needed` on top
    /// of what was granted, unless a concurrent step-up already got them.
    pub async fn step_up(&self, name: &str, needed: &[String], progress: &DynProgress) -> Result<ServerRecord, Error> {
        let _flight = self.flights.lock(name).await;
        let record = self.server(name)?;
        if record.state == ServerState::SignedIn && needed.iter().all(|s| record.scopes.contains(s)) {
            return Ok(record);
        }
        let req = LoginRequest { url: record.url.clone(), name: Some(name.to_owned()), extra_scopes: needed.to_vec(), ..Default::default() };
        let discovery = discovery::discover(&self.http, &req.url).await?;
        self.login_as(name, &discovery, &req, progress).await
    }

    /// The record, if the server is signed in with tokens in the keychain.
    fn usable(&self, name: &str) -> Result<Option<ServerRecord>, Error> {
        let record = self.vault.store.with(|r| r.servers.get(name).cloned())?;
        match record {
            Some(r) if r.state == ServerState::SignedIn && self.tokens(name)?.is_some() => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    async fn login_as(&self, name: &str, discovery: &Discovery, req: &LoginRequest, progress: &DynProgress) -> Result<ServerRecord, Error> {
        let name = name.to_owned();
        let previous = self.vault.store.with(|r| r.servers.get(&name).map(|s| s.scopes.clone()))?.unwrap_or_default();
        let selected = scopes::select(discovery.challenge.as_ref(), &discovery.resource_metadata, &discovery.auth_server);
        let wanted = scopes::union(&scopes::union(&selected, &req.extra_scopes), &previous);
        let (credentials, issued) = self.authorize_with_retry(req, discovery, &wanted, progress).await?;
        self.save_login(&name, discovery, &credentials, &issued, &wanted)
    }

    /// Sign in once; a dynamically registered client the AS has forgotten is registered
    /// again, once.
    async fn authorize_with_retry(
        &self,
        req: &LoginRequest,
        discovery: &Discovery,
        scopes: &[String],
        progress: &DynProgress,
    ) -> Result<(Credentials, Issued), Error> {
        let timeout = req.timeout.unwrap_or(login::DEFAULT_TIMEOUT);
        let mut existing = self.stored_client(discovery.issuer())?;
        for attempt in 0..2 {
            let loopback = Loopback::bind().await.map_err(|e| LoginError::Wait(e.into()))?;
            let credentials =
                registration::obtain(&self.http, &discovery.auth_server, &req.client, existing.take(), &loopback.redirect_uri())
                    .await
                    .map_err(LoginError::from)?;
            match login::authorize(&self.http, discovery, &credentials, scopes, loopback, timeout, progress).await {
                Err(LoginError::Token(TokenError::InvalidClient(_)))
                    if attempt == 0 && credentials.record.kind == RegistrationKind::Dynamic =>
                {
                    self.forget_client(discovery.issuer())?;
                }
                other => return Ok((credentials, other?)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn choose_name(&self, req: &LoginRequest, discovery: &Discovery) -> Result<String, Error> {
        let registry = self.vault.store.load()?;
        let url = discovery.server.as_canonical();
        let name = match &req.name {
            Some(n) => n.clone(),
            None => registry.servers.values().find(|s| s.url == url).map(|s| s.name.clone()).unwrap_or_else(|| discovery.server.default_name()),
        };
        validate_name(&name)?;
        match registry.servers.get(&name) {
            Some(s) if s.url != url => Err(Error::NameTaken { name, url: s.url.clone() }),
            _ => Ok(name),
        }
    }

    fn stored_client(&self, issuer: &str) -> Result<Option<Credentials>, Error> {
        let Some(record) = self.vault.store.load()?.clients.remove(issuer) else { return Ok(None) };
        let secret = if record.has_secret { self.vault.keychain.get(&vault::client_account(issuer)).map_err(VaultError::from)? } else { None };
        if record.has_secret && secret.is_none() {
            return Ok(None); // the secret is gone: register anew rather than fail
        }
        Ok(Some(Credentials { record, secret }))
    }

    fn forget_client(&self, issuer: &str) -> Result<(), Error> {
        self.vault.keychain.delete(&vault::client_account(issuer)).map_err(VaultError::from)?;
        self.vault.store.update(|r| r.clients.remove(issuer))?;
        Ok(())
    }

    fn save_login(
        &self,
        name: &str,
        discovery: &Discovery,
        credentials: &Credentials,
        issued: &Issued,
        requested: &[String],
    ) -> Result<ServerRecord, Error> {
        let k = &self.vault.keychain;
        if let Some(secret) = &credentials.secret {
            k.set(&vault::client_account(discovery.issuer()), secret).map_err(VaultError::from)?;
        }
        k.set(&vault::server_account(name), &issued.tokens.to_secret()).map_err(VaultError::from)?;
        let record = ServerRecord {
            name: name.to_owned(),
            url: discovery.server.as_canonical(),
            resource: discovery.resource.as_canonical(),
            issuer: discovery.issuer().to_owned(),
            client_id: credentials.record.client_id.clone(),
            auth_server: discovery.auth_server.clone(),
            state: ServerState::SignedIn,
            scopes: issued.scopes.clone().unwrap_or_else(|| requested.to_vec()),
            account: account_hint(&issued.tokens.access_token),
            issued_at: Some(issued.issued_at),
            expires_at: issued.expires_at,
            has_refresh_token: issued.tokens.refresh_token.is_some(),
            last_used_at: None,
            last_error: None,
        };
        self.vault.store.update(|r| {
            r.clients.insert(discovery.issuer().to_owned(), credentials.record.clone());
            r.servers.insert(name.to_owned(), record.clone());
        })?;
        Ok(record)
    }

    fn tokens(&self, name: &str) -> Result<Option<TokenSet>, Error> {
        let secret = self.vault.keychain.get(&vault::server_account(name)).map_err(VaultError::from)?;
        Ok(secret.as_ref().and_then(TokenSet::from_secret))
    }

    fn credentials_for(&self, record: &ServerRecord) -> Result<Credentials, Error> {
        self.stored_client(&record.issuer)?
            .filter(|c| c.record.client_id == record.client_id)
            .ok_or_else(|| Error::NotSignedIn(record.name.clone()))
    }

    /// A valid access token for `name`, refreshed first when it is due. Concurrent callers
    /// with a due token cause one refresh. The hot path reads only memory.
    pub async fn access_token(&self, name: &str) -> Result<AccessToken, Error> {
        if let Some(t) = self.fresh_token(name)? {
            return Ok(t);
        }
        let _flight = self.flights.lock(name).await;
        if let Some(t) = self.fresh_token(name)? {
            return Ok(t);
        }
        Ok(self.refresh_locked(name).await?.tokens.access_token)
    }

    /// The upstream rejected `rejected` (401): refresh, unless someone already did.
    pub async fn refresh_after_rejection(&self, name: &str, rejected: &AccessToken) -> Result<AccessToken, Error> {
        let _flight = self.flights.lock(name).await;
        match self.tokens(name)? {
            Some(t) if t.access_token.secret() != rejected.secret() => Ok(t.access_token),
            _ => Ok(self.refresh_locked(name).await?.tokens.access_token),
        }
    }

    /// The stored access token when signed in and not due for refresh; an error when the
    /// server is unknown or not signed in.
    fn fresh_token(&self, name: &str) -> Result<Option<AccessToken>, Error> {
        let (state, issued_at, expires_at) = self.with_server(name, |s| (s.state, s.issued_at, s.expires_at))?;
        let tokens = match (state, self.tokens(name)?) {
            (ServerState::SignedIn, Some(t)) => t,
            _ => return Err(Error::NotSignedIn(name.to_owned())),
        };
        let due = tokens::refresh_due(issued_at, expires_at, OffsetDateTime::now_utc());
        Ok((!due).then_some(tokens.access_token))
    }

    /// Mark a server as needing a new sign-in (its grant was refused upstream).
    pub fn mark_needs_login(&self, name: &str, why: &str) -> Result<(), Error> {
        self.mark(name, ServerState::NeedsLogin, Some(why.to_owned()))
    }

    /// Refresh now. A rotated refresh token is stored before the new access token is used;
    /// a dead grant marks the server `needs_login`; transient failures are retried with
    /// backoff and never delete anything.
    pub async fn refresh(&self, name: &str) -> Result<Issued, Error> {
        let _flight = self.flights.lock(name).await;
        self.refresh_locked(name).await
    }

    async fn refresh_locked(&self, name: &str) -> Result<Issued, Error> {
        let record = self.server(name)?;
        let tokens = self.tokens(name)?.filter(|_| record.state != ServerState::SignedOut).ok_or_else(|| Error::NotSignedIn(name.to_owned()))?;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            self.mark(name, ServerState::NeedsLogin, Some("no refresh token".into()))?;
            return Err(Error::NotSignedIn(name.to_owned()));
        };
        let credentials = self.credentials_for(&record)?;
        // A rotating AS spends the refresh token now: refresh only when the new one can be
        // stored, or a later refresh would replay the spent one.
        if let Err(e) = self.vault.keychain.check_writable() {
            self.mark(name, record.state, Some(e.to_string()))?;
            return Err(VaultError::from(e).into());
        }
        match self.refresh_with_backoff(&record, &credentials, &refresh_token).await {
            Ok(issued) => {
                // Locked since the check: the keychain cache keeps the new set and saves it later.
                let saved = self.vault.keychain.set(&vault::server_account(name), &issued.tokens.to_secret());
                let last_error = saved.err().map(|e| format!("{e}; the new tokens are kept in memory until then"));
                self.vault.store.update(|r| {
                    if let Some(s) = r.servers.get_mut(name) {
                        s.state = ServerState::SignedIn;
                        s.issued_at = Some(issued.issued_at);
                        s.expires_at = issued.expires_at;
                        s.has_refresh_token = issued.tokens.refresh_token.is_some();
                        s.last_error = last_error.clone();
                        if let Some(scopes) = &issued.scopes {
                            s.scopes = scopes.clone();
                        }
                    }
                })?;
                Ok(issued)
            }
            Err(source) => {
                match &source {
                    TokenError::InvalidGrant(_) => self.mark(name, ServerState::NeedsLogin, Some(source.to_string()))?,
                    TokenError::InvalidClient(_) => {
                        if credentials.record.kind == RegistrationKind::Dynamic {
                            self.forget_client(&record.issuer)?;
                        }
                        self.mark(name, ServerState::NeedsLogin, Some(source.to_string()))?
                    }
                    _ => self.mark(name, record.state, Some(source.to_string()))?,
                }
                Err(Error::Refresh { name: name.to_owned(), source })
            }
        }
    }

    async fn refresh_with_backoff(&self, record: &ServerRecord, credentials: &Credentials, token: &RefreshToken) -> Result<Issued, TokenError> {
        let client = credentials.oauth_client(&record.auth_server);
        let mut delay = Duration::from_millis(250);
        for attempt in 0.. {
            let result = client
                .exchange_refresh_token(token)
                .add_extra_param("resource", record.resource.clone())
                .request_async(&self.http)
                .await
                .map_err(TokenError::from)
                .and_then(|r| Ok(Issued::from_response(&r, Some(token.clone()), OffsetDateTime::now_utc())?));
            match result {
                Err(TokenError::Transient(_)) if attempt < 3 => {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                other => return other,
            }
        }
        unreachable!()
    }

    fn mark(&self, name: &str, state: ServerState, error: Option<String>) -> Result<(), Error> {
        self.vault.store.update(|r| {
            if let Some(s) = r.servers.get_mut(name) {
                s.state = state;
                s.last_error = error;
            }
        })?;
        Ok(())
    }

    /// Revoke at the AS (RFC 7009) when it has a revocation endpoint, then forget the
    /// tokens. With `local_only`, a failed revocation does not stop the forgetting.
    pub async fn logout(&self, name: &str, local_only: bool) -> Result<LogoutReport, Error> {
        let _flight = self.flights.lock(name).await;
        let record = self.server(name)?;
        let mut revoked = false;
        if let (Some(tokens), Some(_)) = (self.tokens(name)?, &record.auth_server.revocation_endpoint) {
            match self.revoke(&record, &tokens).await {
                Ok(()) => revoked = true,
                Err(reason) if !local_only => return Err(Error::Revoke { name: name.to_owned(), reason }),
                Err(_) => {}
            }
        }
        self.vault.keychain.delete(&vault::server_account(name)).map_err(VaultError::from)?;
        self.vault.store.update(|r| {
            if let Some(s) = r.servers.get_mut(name) {
                s.state = ServerState::SignedOut;
                s.expires_at = None;
                s.issued_at = None;
                s.has_refresh_token = false;
                s.last_error = None;
            }
        })?;
        Ok(LogoutReport { revoked })
    }

    /// Sign out (revoking where the AS can be reached) and forget the server altogether.
    pub async fn remove(&self, name: &str) -> Result<LogoutReport, Error> {
        let report = self.logout(name, true).await?;
        let _flight = self.flights.lock(name).await;
        self.vault.store.update(|r| r.servers.remove(name))?;
        Ok(report)
    }

    async fn revoke(&self, record: &ServerRecord, tokens: &TokenSet) -> Result<(), String> {
        let Some(endpoint) = &record.auth_server.revocation_endpoint else { return Ok(()) };
        let credentials = self.credentials_for(record).map_err(|e| e.to_string())?;
        if let Some(rt) = &tokens.refresh_token {
            revocation::revoke(&self.http, endpoint, &credentials, rt.secret(), "refresh_token").await?;
        }
        revocation::revoke(&self.http, endpoint, &credentials, tokens.access_token.secret(), "access_token").await
    }
}

fn validate_name(name: &str) -> Result<(), Error> {
    if vault::valid_name(name) { Ok(()) } else { Err(Error::BadName(name.to_owned())) }
}

/// The account a JWT access token names (`sub`), for display only: never trusted, never
/// verified, and absent for opaque tokens.
fn account_hint(token: &AccessToken) -> Option<String> {
    use base64::Engine;
    let payload = token.secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let sub = claims.get("email").or_else(|| claims.get("preferred_username")).or_else(|| claims.get("sub"))?.as_str()?;
    Some(sub.chars().filter(|c| !c.is_control()).take(100).collect())
}
