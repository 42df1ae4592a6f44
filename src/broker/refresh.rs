//! A signed-in server's token lifecycle: the access token from memory while it is fresh,
//! one refresh for everyone when it is due or was rejected, and what each failure means:
//!
//! - success: the new token set (a rotated refresh token with it) is stored in the
//!   keychain *before* the new access token is handed out;
//! - `invalid_grant`: the grant is dead, the server needs a new sign-in; its URL, client
//!   and endpoints are kept for that sign-in;
//! - `invalid_client`: the same, and a dynamic client the AS forgot is forgotten too, so
//!   the next sign-in registers a new one;
//! - anything else (the AS is down, the keychain locked): retried, nothing is deleted, the
//!   state stays and the error is shown.

use std::time::Duration;

use oauth2::{AccessToken, RefreshToken};
use time::OffsetDateTime;

use super::{Broker, Error};
use crate::oauth::client::{Credentials, RegistrationKind};
use crate::oauth::login::TokenError;
use crate::oauth::tokens::{self, Issued, TokenSet};
use crate::vault::{self, ServerRecord, ServerState, VaultError};

/// How many times a transient refresh failure is retried, and the first pause.
const RETRIES: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

impl Broker {
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

    /// Refresh now, whatever the token's age.
    pub async fn refresh(&self, name: &str) -> Result<Issued, Error> {
        let _flight = self.flights.lock(name).await;
        self.refresh_locked(name).await
    }

    /// Mark a server as needing a new sign-in (its grant was refused upstream).
    pub fn mark_needs_login(&self, name: &str, why: &str) -> Result<(), Error> {
        self.update_server(name, |s| s.needs_login(why))
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

    pub(crate) fn tokens(&self, name: &str) -> Result<Option<TokenSet>, Error> {
        let secret = self.vault.secrets.get(&vault::server_account(name)).map_err(VaultError::from)?;
        Ok(secret.as_ref().and_then(TokenSet::from_secret))
    }

    pub(super) async fn refresh_locked(&self, name: &str) -> Result<Issued, Error> {
        let record = self.server(name)?;
        let tokens = self.tokens(name)?.filter(|_| record.state != ServerState::SignedOut).ok_or_else(|| Error::NotSignedIn(name.to_owned()))?;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            self.update_server(name, |s| s.needs_login("no refresh token"))?;
            return Err(Error::NotSignedIn(name.to_owned()));
        };
        let credentials = self.credentials_for(&record)?;
        // A rotating AS spends the refresh token now: refresh only when the new one can be
        // stored, or a later refresh would replay the spent one.
        if let Err(e) = self.vault.secrets.check_writable() {
            self.update_server(name, |s| s.failed(e.to_string()))?;
            return Err(VaultError::from(e).into());
        }
        match self.refresh_with_backoff(&record, &credentials, &refresh_token).await {
            Ok(issued) => self.keep_refreshed(name, issued),
            Err(source) => {
                self.refresh_failed(&record, &source, credentials.client.kind)?;
                Err(Error::Refresh { name: name.to_owned(), source })
            }
        }
    }

    /// Ask the AS, again after a pause (×4 each time) while it is unavailable.
    async fn refresh_with_backoff(&self, record: &ServerRecord, credentials: &Credentials, token: &RefreshToken) -> Result<Issued, TokenError> {
        let endpoints = record.auth_server.endpoints();
        let mut pause = FIRST_PAUSE;
        for _ in 0..RETRIES {
            match self.auth_server.refresh(&endpoints, credentials, token, record.quirks.resource(&record.resource)).await {
                Err(TokenError::Transient(_)) => {
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                other => return other,
            }
        }
        self.auth_server.refresh(&endpoints, credentials, token, record.quirks.resource(&record.resource)).await
    }

    /// Store a refreshed token set, then its record. A keychain locked since the check
    /// keeps the new set in its cache and saves it later, which the record says.
    fn keep_refreshed(&self, name: &str, issued: Issued) -> Result<Issued, Error> {
        let saved = self.vault.secrets.set(&vault::server_account(name), &issued.tokens.to_secret());
        let unsaved = saved.err().map(|e| format!("{e}; the new tokens are kept in memory until then"));
        self.update_server(name, |s| s.refreshed(&issued, unsaved))?;
        Ok(issued)
    }

    fn refresh_failed(&self, record: &ServerRecord, error: &TokenError, kind: RegistrationKind) -> Result<(), Error> {
        match error {
            TokenError::InvalidGrant(_) => self.update_server(&record.name, |s| s.needs_login(error.to_string())),
            TokenError::InvalidClient(_) => {
                if kind == RegistrationKind::Dynamic {
                    self.forget_client(&record.client_key())?;
                }
                self.update_server(&record.name, |s| s.needs_login(error.to_string()))
            }
            _ => self.update_server(&record.name, |s| s.failed(error.to_string())),
        }
    }

    /// Change one server's record in the file; a server removed meanwhile is left removed.
    pub(crate) fn update_server(&self, name: &str, f: impl FnOnce(&mut ServerRecord)) -> Result<(), Error> {
        self.vault.store.update(|r| r.servers.get_mut(name).map(f))?;
        Ok(())
    }
}
