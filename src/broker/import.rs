//! Importing a grant another tool obtained (mcp-remote's client registration and tokens),
//! so switching to the broker needs no new sign-in:
//!
//! 1. discover the server, as a sign-in does, for its resource and authorization server;
//! 2. check what the tool recorded belongs there: the issuer its client and tokens name (when
//!    it recorded one) is this server's, the tokens are Bearer tokens, the client
//!    authenticates in a way the broker speaks;
//! 3. store client and tokens as a sign-in does ([`Broker::save_login`]: keychain first), the
//!    client flagged as imported: its redirect URIs are the tool's, so it serves this grant
//!    and no new sign-in;
//! 4. prove it: one refresh through the usual path when there is a refresh token (single
//!    flight, the rotated token stored before anything else), else one MCP request that the
//!    server must accept with the access token.
//!
//! When the proof fails, everything stored in 3 is put back as it was: an import either
//! leaves a working grant or nothing. The caller deletes the tool's copy only after success.
//! What the tool's files look like is [`crate::hosts::import`]'s business, not the broker's.

use oauth2::{AccessToken, RefreshToken};
use time::OffsetDateTime;

use super::signin::Asked;
use super::{Broker, Error, LoginRequest};
use crate::oauth::client::{Client, Credentials, RegistrationKind, TokenAuthMethod};
use crate::oauth::discovery::{self, Discovery};
use crate::oauth::quirks::Quirks;
use crate::oauth::tokens::{Issued, TokenSet};
use crate::secret::Secret;
use crate::vault::{self, ClientRecord, ServerRecord, VaultError};

/// A client registration another tool holds.
#[derive(Debug, Clone)]
pub struct ImportedClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// RFC 7591 `token_endpoint_auth_method` as the tool recorded it (absent: the RFC's
    /// default, `client_secret_basic`, for a client with a secret).
    pub auth_method: Option<String>,
    /// The issuer the tool says the client was registered at, if it recorded one.
    pub issuer: Option<String>,
}

/// The tokens another tool holds for a server.
#[derive(Debug, Clone)]
pub struct ImportedTokens {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub token_type: String,
    pub expires_at: Option<OffsetDateTime>,
    /// Granted (or else requested) scopes.
    pub scopes: Vec<String>,
    /// The issuer the tool says the tokens came from, if it recorded one.
    pub issuer: Option<String>,
}

/// Why an import was refused before or after anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportRefused {
    #[error("its {what} belongs to the authorization server {recorded}, not to this server's ({issuer})")]
    OtherIssuer { what: &'static str, recorded: String, issuer: String },
    #[error("its tokens are of type {0:?}; only Bearer tokens are supported")]
    NotBearer(String),
    #[error("its client authenticates with {0:?}, which the broker does not support")]
    AuthMethod(String),
    #[error("it is signed in to the broker already; nothing was imported (sign out first to replace that grant)")]
    AlreadySignedIn,
    #[error("the server did not accept its access token ({0}); nothing was stored")]
    Rejected(String),
}

/// What a server's name held before an import wrote over it, to put back if the proof fails.
struct Before {
    record: Option<ServerRecord>,
    tokens: Option<Secret>,
    client: Option<ClientRecord>,
    client_secret: Option<Secret>,
}

impl Broker {
    /// Import a grant for the server at `url` (named `name`, or as a sign-in would name it),
    /// prove it works, and return its record; on any failure nothing stays stored.
    pub async fn import(&self, name: Option<String>, url: &str, client: ImportedClient, tokens: ImportedTokens) -> Result<ServerRecord, Error> {
        self.vault.secrets.check_writable().map_err(VaultError::from)?;
        let discovery = discovery::discover(&self.http, url).await?;
        let req = LoginRequest { url: url.to_owned(), name, ..Default::default() };
        let name = self.choose_name(&req, &discovery)?;
        let refused = |reason| Error::Import { name: name.clone(), reason };
        let credentials = credentials(&discovery, &client, &tokens).map_err(refused)?;
        let _flight = self.flights.lock(&name).await;
        if self.usable(&name)?.is_some() {
            return Err(refused(ImportRefused::AlreadySignedIn));
        }
        let before = self.before(&name, &credentials)?;
        let issued = issued(tokens);
        let requested = issued.scopes.clone().unwrap_or_default();
        let proved = match self.save_login(&name, &discovery, &credentials, &issued, Asked { scopes: &requested, quirks: &Quirks::default() }, true) {
            Ok(_) => self.prove(&name, &discovery, &issued).await,
            Err(e) => Err(e),
        };
        match proved {
            Ok(()) => self.server(&name),
            Err(e) => {
                self.put_back(&name, &credentials, before)?;
                Err(e)
            }
        }
    }

    /// One refresh (the stored refresh token is spent once, its successor stored first), or
    /// else one request the server must accept with the access token.
    async fn prove(&self, name: &str, discovery: &Discovery, issued: &Issued) -> Result<(), Error> {
        if issued.tokens.refresh_token.is_some() {
            return self.refresh_locked(name).await.map(drop);
        }
        let status = accepts(self, discovery, &issued.tokens.access_token).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Import { name: name.to_owned(), reason: ImportRefused::Rejected(format!("HTTP {}", status.as_u16())) })
        }
    }

    fn before(&self, name: &str, credentials: &Credentials) -> Result<Before, Error> {
        let key = credentials.client.key();
        let (record, client) = self.vault.store.with(|r| (r.servers.get(name).cloned(), r.client(&key).cloned()))?;
        let get = |account: &str| self.vault.secrets.get(account).map_err(VaultError::from);
        Ok(Before { record, client, tokens: get(&vault::server_account(name))?, client_secret: get(&vault::client_account(&key))? })
    }

    /// Undo an import: the server's record and tokens, the client's record and secret, each
    /// back to what it was (absent stays absent).
    fn put_back(&self, name: &str, credentials: &Credentials, before: Before) -> Result<(), Error> {
        let key = credentials.client.key();
        let restore = |account: &str, value: &Option<Secret>| match value {
            Some(s) => self.vault.secrets.set(account, s),
            None => self.vault.secrets.delete(account),
        };
        restore(&vault::server_account(name), &before.tokens).map_err(VaultError::from)?;
        restore(&vault::client_account(&key), &before.client_secret).map_err(VaultError::from)?;
        self.vault.store.update(|r| {
            match before.record {
                Some(record) => r.servers.insert(name.to_owned(), record),
                None => r.servers.remove(name),
            };
            match before.client {
                Some(client) => r.insert_client(client),
                None => drop(r.remove_client(&key)),
            }
        })?;
        Ok(())
    }
}

/// The imported client as this server's authorization server knows it, after the checks.
fn credentials(discovery: &Discovery, client: &ImportedClient, tokens: &ImportedTokens) -> Result<Credentials, ImportRefused> {
    let issuer = discovery.issuer();
    for (what, recorded) in [("client", &client.issuer), ("tokens", &tokens.issuer)] {
        if let Some(recorded) = recorded.as_deref().filter(|r| !same_issuer(r, issuer)) {
            return Err(ImportRefused::OtherIssuer { what, recorded: recorded.to_owned(), issuer: issuer.to_owned() });
        }
    }
    if !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(ImportRefused::NotBearer(tokens.token_type.clone()));
    }
    let auth_method = match (client.auth_method.as_deref(), client.client_secret.is_some()) {
        (Some("none"), _) | (None, false) => TokenAuthMethod::None,
        (Some("client_secret_basic"), _) | (None, true) => TokenAuthMethod::ClientSecretBasic,
        (Some("client_secret_post"), _) => TokenAuthMethod::ClientSecretPost,
        (Some(other), _) => return Err(ImportRefused::AuthMethod(other.to_owned())),
    };
    let client_id = client.client_id.clone();
    Ok(Credentials {
        client: Client { issuer: issuer.to_owned(), client_id, kind: RegistrationKind::Dynamic, auth_method },
        secret: client.client_secret.clone(),
    })
}

/// Issuers compare as strings (RFC 8414 §3.3), but a trailing `/` is spelled both ways.
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The imported tokens as if just issued: the lifetime they have left, the scopes they say.
fn issued(tokens: ImportedTokens) -> Issued {
    Issued {
        tokens: TokenSet { access_token: tokens.access_token, refresh_token: tokens.refresh_token },
        issued_at: OffsetDateTime::now_utc(),
        expires_at: tokens.expires_at,
        scopes: (!tokens.scopes.is_empty()).then_some(tokens.scopes),
    }
}

/// The status the server answers an MCP `initialize` sent with `token`.
async fn accepts(broker: &Broker, discovery: &Discovery, token: &AccessToken) -> Result<reqwest::StatusCode, Error> {
    Ok(discovery::send_probe(&broker.http, discovery.server.url(), Some(token)).await?.0)
}
