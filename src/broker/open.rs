//! Servers that ask for no sign-in. A host's first request to a server named only by URL
//! runs discovery; when the server answers without a token and publishes no protected
//! resource metadata, it is recorded here and proxied with nothing attached, through the
//! same consent, policy and audit as the others. Should it ask for a sign-in later (a 401),
//! the record goes and the usual sign-in follows.

use time::OffsetDateTime;

use super::{validate_name, Broker, Error};
use crate::vault::OpenServer;

impl Broker {
    /// Record `name` at `url` as a server that asks for no sign-in.
    pub fn add_open(&self, name: &str, url: &str) -> Result<OpenServer, Error> {
        validate_name(name)?;
        let record = OpenServer { name: name.to_owned(), url: url.to_owned(), added_at: OffsetDateTime::now_utc() };
        self.vault.store.update(|r| {
            let taken = r.servers.get(name).map(|s| s.url.clone()).or_else(|| r.keyed.get(name).map(|k| k.url.clone()));
            match taken {
                Some(other) => Err(Error::NameTaken { name: name.to_owned(), url: other }),
                None => {
                    r.open.insert(name.to_owned(), record.clone());
                    Ok(record)
                }
            }
        })?
    }

    /// The URL of `name` if it asks for no sign-in (the hot path: memory only).
    pub fn open_url(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.vault.store.with(|r| r.open.get(name).map(|o| o.url.clone()))?)
    }

    /// The servers that ask for no sign-in.
    pub fn open_servers(&self) -> Result<Vec<OpenServer>, Error> {
        Ok(self.vault.store.with(|r| r.open.values().cloned().collect())?)
    }

    /// Forget that `name` asks for no sign-in; `false` when it is not such a server.
    pub fn remove_open(&self, name: &str) -> Result<bool, Error> {
        Ok(self.vault.store.update(|r| r.open.remove(name).is_some())?)
    }
}
