//! The OAuth clients a home holds: found by issuer and client id, their secrets in the
//! keychain under the same pair, so two servers at one authorization server may use two
//! clients (one pre-registered, one dynamic) without one overwriting the other.

use time::OffsetDateTime;

use super::{Broker, Error};
use crate::oauth::client::{ClientKey, Credentials, RegistrationKind};
use crate::vault::{self, ClientRecord, VaultError};

impl Broker {
    /// The client `key` with its secret; `None` when unknown, or when its secret is gone
    /// (a new registration is better than a failure).
    pub(crate) fn stored_client(&self, key: &ClientKey) -> Result<Option<Credentials>, Error> {
        let Some(record) = self.vault.store.with(|r| r.client(key).cloned())? else { return Ok(None) };
        let secret = match (record.has_secret, record.legacy_secret) {
            (false, _) => None,
            (true, false) => self.vault.secrets.get(&vault::client_account(key)).map_err(VaultError::from)?,
            (true, true) => self.migrate_legacy_secret(&record)?,
        };
        if record.has_secret && secret.is_none() {
            return Ok(None);
        }
        Ok(Some(Credentials { client: record.client(), secret }))
    }

    /// A secret kept under the issuer alone (one client per issuer, as older versions did)
    /// moves to the account of its issuer and client id; the old entry is deleted once the
    /// new one is written.
    fn migrate_legacy_secret(&self, record: &ClientRecord) -> Result<Option<crate::secret::Secret>, Error> {
        let legacy = vault::legacy_client_account(&record.issuer);
        let Some(secret) = self.vault.secrets.get(&legacy).map_err(VaultError::from)? else { return Ok(None) };
        if self.vault.secrets.set(&vault::client_account(&record.key()), &secret).is_ok() {
            self.vault.store.update(|r| {
                if let Some(c) = r.clients.get_mut(&vault::store::client_map_key(&record.key())) {
                    c.legacy_secret = false;
                }
            })?;
            let _ = self.vault.secrets.delete(&legacy);
        }
        Ok(Some(secret))
    }

    /// The client to offer a sign-in of `name` at `issuer`: the one its grant used, else a
    /// dynamic one registered there before, else any other client there; never one imported
    /// from another tool (its redirect URIs are that tool's).
    pub(crate) fn reusable_client(&self, name: &str, issuer: &str) -> Result<Option<Credentials>, Error> {
        let (own, others) = self.vault.store.with(|r| {
            let offered = |key: &ClientKey| r.client(key).is_some_and(|c| !c.imported);
            let own = r.servers.get(name).filter(|s| s.issuer == issuer).map(|s| s.client_key()).filter(offered);
            let mut others: Vec<&ClientRecord> = r.clients_at(issuer).filter(|c| !c.imported).collect();
            others.sort_by_key(|c| c.kind != RegistrationKind::Dynamic);
            (own, others.into_iter().map(ClientRecord::key).collect::<Vec<_>>())
        })?;
        for key in own.iter().chain(&others) {
            if let Some(c) = self.stored_client(key)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// The client a server's grant belongs to, or "not signed in" when it is gone.
    pub(crate) fn credentials_for(&self, record: &vault::ServerRecord) -> Result<Credentials, Error> {
        self.stored_client(&record.client_key())?.ok_or_else(|| Error::NotSignedIn(record.name.clone()))
    }

    /// Forget a client the authorization server no longer knows.
    pub(crate) fn forget_client(&self, key: &ClientKey) -> Result<(), Error> {
        self.vault.secrets.delete(&vault::client_account(key)).map_err(VaultError::from)?;
        self.vault.store.update(|r| r.remove_client(key))?;
        Ok(())
    }

    /// Keep a client: its secret in the keychain first, then its record.
    pub(crate) fn keep_client_secret(&self, credentials: &Credentials) -> Result<(), Error> {
        if let Some(secret) = &credentials.secret {
            self.vault.secrets.set(&vault::client_account(&credentials.client.key()), secret).map_err(VaultError::from)?;
        }
        Ok(())
    }

    /// The record to store for `credentials`, keeping the date of an earlier registration.
    pub(crate) fn client_record(&self, credentials: &Credentials) -> Result<ClientRecord, Error> {
        let key = credentials.client.key();
        let since = self.vault.store.with(|r| r.client(&key).map(|c| c.registered_at))?;
        Ok(ClientRecord::new(&credentials.client, credentials.secret.is_some(), since.unwrap_or_else(OffsetDateTime::now_utc)))
    }
}
