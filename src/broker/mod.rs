//! The lifecycle of a server's grant, one job a file, each happening once per server at a
//! time ([`flights`]):
//!
//! - [`signin`]: discover, register, authorize, store (and [`step_up`] for more scopes);
//! - [`import`]: a grant another tool obtained, stored as a sign-in's and proved by one use;
//! - [`refresh`]: the access token while fresh, one refresh when due, what failures mean;
//! - [`signout`]: revoke, then forget;
//! - [`clients`]: the OAuth clients a home holds, by issuer and client id;
//! - [`pending`]: servers named before their first sign-in;
//! - [`inboxes`]: sign-ins waiting for an authorization response the user may paste;
//! - [`underway`]: sign-ins in progress, as `status`, `login NAME` and hosts show them;
//! - [`api_keys`]: servers that take an API key instead of OAuth;
//! - [`open`]: servers that ask for no sign-in at all.
//!
//! Every flow ends the same way: secrets go to the keychain first, then the non-secret
//! record to the config dir, so a crash in between never leaves metadata pointing at
//! tokens that were not stored. State changes are the [`ServerRecord`]'s own methods.
//! The authorization server is reached through [`network::AuthServer`], so all of this is
//! unit-tested against a scripted one.

pub mod api_keys;
mod clients;
mod flights;
pub mod import;
mod inboxes;
pub mod network;
mod open;
mod pending;
pub mod refresh;
pub mod signin;
pub mod signout;
pub mod step_up;
pub mod underway;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use oauth2::AccessToken;

use crate::net::{FetchError, HttpClient};
use crate::oauth::discovery::{DiscoveryError, Unauthorized};
use crate::oauth::login::{LoginError, Method, TokenError};
use crate::oauth::quirks::Quirks;
use crate::oauth::registration::ClientChoice;
use crate::vault::{self, ServerRecord, Vault, VaultError};
use flights::Flights;
use network::AuthServer;
pub use import::{ImportRefused, ImportedClient, ImportedTokens};
use pending::Pending;

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
    #[error("{0} answers without a token: it asks for no sign-in yet")]
    NotAskedYet(String),
    #[error("{0} is signed out; sign in again with `mcp-broker login {0}` (or from the mcp-broker window)")]
    SignedOut(String),
    #[error("{name} {reason}")]
    StepUp { name: String, reason: step_up::StepUpRefused },
    #[error("refreshing {name} failed: {source}")]
    Refresh { name: String, source: TokenError },
    #[error("could not revoke the tokens of {name} at the authorization server ({reason}); nothing was deleted: retry, or pass --local to forget them anyway")]
    Revoke { name: String, reason: String },
    #[error("cannot import {name}: {reason}")]
    Import { name: String, reason: import::ImportRefused },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    BadKey(String),
    #[error("{0}")]
    Joined(String),
    /// A failure that one of the `login` settings explains ([`crate::oauth::quirks::hint`]).
    #[error("{message} ({hint})")]
    Hinted { message: String, hint: &'static str },
    #[error("the pasted address was not used: {0}; paste the address the browser ended on for this sign-in")]
    Paste(#[from] crate::oauth::login::PasteError),
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
    /// How the user signs in; `None`: the browser, unless `headless` says there is none.
    pub method: Option<Method>,
    /// Why no browser can be opened where the user is (an SSH session, no display), as the
    /// asking program saw it; the sign-in then uses a code, or a pasted address.
    pub headless: Option<String>,
    /// The host whose request needs the sign-in; `None`: the user asked.
    pub asked_by: Option<String>,
    /// The 401 that host's request got, when that is what needs the sign-in.
    pub refused: Option<Unauthorized>,
    /// How its authorization server departs from the textbook, as given to this sign-in;
    /// `None`: as stored with the server (none for a new one).
    pub quirks: Option<Quirks>,
    /// A further account at the server: the sign-in is `NAME@ACCOUNT`.
    pub account: Option<String>,
}

/// For which host a sign-in or step-up runs, and why no browser can be opened where its
/// user is (the fields of the same name of [`LoginRequest`]).
#[derive(Debug, Clone, Default)]
pub struct Asker {
    pub host: Option<String>,
    pub headless: Option<String>,
}

/// What logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutReport {
    pub revoked: bool,
}

pub struct Broker {
    vault: Vault,
    http: HttpClient,
    auth_server: Arc<dyn AuthServer>,
    flights: Flights,
    pending: Pending,
    inboxes: inboxes::Inboxes,
    underway: underway::Underway,
}

impl Broker {
    /// The broker of `home`: secrets in the OS keychain, the network for real.
    pub fn open(home: vault::Home) -> Result<Self, Error> {
        let http = HttpClient::new()?;
        Ok(Self::new(Vault::open(home)?, http.clone(), Arc::new(http)))
    }

    /// A broker over any vault and authorization server (unit tests script both).
    pub fn new(vault: Vault, http: HttpClient, auth_server: Arc<dyn AuthServer>) -> Self {
        Self { vault, http, auth_server, flights: Flights::default(), pending: Pending::default(), inboxes: Default::default(), underway: Default::default() }
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
