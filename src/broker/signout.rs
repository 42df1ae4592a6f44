//! Signing out: revoke at the authorization server (RFC 7009), the refresh token first
//! (it ends the grant) and then the access token, then forget the tokens. A revocation
//! that fails stops the sign-out, unless the user asked to forget locally anyway.

use super::{Broker, Error, LogoutReport};
use crate::oauth::tokens::TokenSet;
use crate::vault::{self, ServerRecord, VaultError};

impl Broker {
    /// Revoke where the AS has a revocation endpoint, then forget the tokens. With
    /// `local_only`, a failed revocation does not stop the forgetting.
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
        self.vault.secrets.delete(&vault::server_account(name)).map_err(VaultError::from)?;
        self.update_server(name, ServerRecord::signed_out)?;
        Ok(LogoutReport { revoked })
    }

    /// Sign out (revoking where the AS can be reached) and forget the server altogether.
    pub async fn remove(&self, name: &str) -> Result<LogoutReport, Error> {
        let report = self.logout(name, true).await?;
        let _flight = self.flights.lock(name).await;
        self.vault.store.update(|r| r.servers.remove(name))?;
        self.pending.forget(name);
        Ok(report)
    }

    async fn revoke(&self, record: &ServerRecord, tokens: &TokenSet) -> Result<(), String> {
        let Some(endpoint) = &record.auth_server.revocation_endpoint else { return Ok(()) };
        let credentials = self.credentials_for(record).map_err(|e| e.to_string())?;
        if let Some(rt) = &tokens.refresh_token {
            self.auth_server.revoke(endpoint, &credentials, rt.secret(), "refresh_token").await?;
        }
        self.auth_server.revoke(endpoint, &credentials, tokens.access_token.secret(), "access_token").await
    }
}
