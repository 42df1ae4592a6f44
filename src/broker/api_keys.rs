//! Servers that take an API key instead of OAuth (`mcp-broker add NAME URL --bearer-env VAR`):
//! the key's header values live in the keychain under the server's account, the record names
//! only the headers. The proxy attaches them exactly as it attaches an access token: only to
//! that server's URL, with the same consent, policy and audit.

use http::{HeaderName, HeaderValue};
use time::OffsetDateTime;
use url::Url;

use super::{validate_name, Broker, Error};
use crate::secret::Secret;
use crate::vault::{self, KeyedServer, VaultError};

/// One header that carries the key, e.g. `Authorization: Bearer …` or `X-Api-Key: …`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyHeader {
    pub name: String,
    pub value: Secret,
}

/// What the proxy needs to call a keyed server.
#[derive(Debug, Clone)]
pub struct KeyedAuth {
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Headers a key may not replace: they describe the request, not its credential (and so
/// does every `Mcp-*` header, checked by prefix).
const RESERVED: &[&str] = &["host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "te", "upgrade", "cookie"];

impl Broker {
    /// Add (or replace the key of) a keyed server. The key goes to the keychain first.
    pub fn add_api_key(&self, name: &str, url: &str, headers: Vec<KeyHeader>) -> Result<KeyedServer, Error> {
        validate_name(name)?;
        let url = checked_url(url)?;
        if headers.is_empty() {
            return Err(Error::BadKey("no header carries the key".into()));
        }
        for h in &headers {
            to_header(h)?;
        }
        if let Some(other) = self.vault.store.with(|r| r.servers.get(name).map(|s| s.url.clone()))? {
            return Err(Error::NameTaken { name: name.to_owned(), url: other });
        }
        let secret = Secret::new(serde_json::to_string(&headers).map_err(|e| Error::BadKey(e.to_string()))?);
        self.vault.secrets.set(&vault::server_account(name), &secret).map_err(VaultError::from)?;
        let record = KeyedServer { name: name.to_owned(), url, headers: headers.iter().map(|h| h.name.clone()).collect(), added_at: OffsetDateTime::now_utc() };
        self.vault.store.update(|r| r.keyed.insert(name.to_owned(), record.clone()))?;
        Ok(record)
    }

    /// The keyed servers, by name.
    pub fn keyed_servers(&self) -> Result<Vec<KeyedServer>, Error> {
        Ok(self.vault.store.with(|r| r.keyed.values().cloned().collect())?)
    }

    /// The URL and headers for a keyed server; `None` when `name` is not one (the hot path:
    /// memory only, the keychain read is cached).
    pub fn api_key(&self, name: &str) -> Result<Option<KeyedAuth>, Error> {
        let Some(url) = self.vault.store.with(|r| r.keyed.get(name).map(|k| k.url.clone()))? else { return Ok(None) };
        let secret = self.vault.secrets.get(&vault::server_account(name)).map_err(VaultError::from)?;
        let Some(secret) = secret else { return Err(Error::BadKey(format!("the key of {name} is not in the keychain any more; add it again"))) };
        let stored: Vec<KeyHeader> = serde_json::from_str(secret.expose()).map_err(|_| Error::BadKey(format!("the key of {name} in the keychain is damaged; add it again")))?;
        let headers = stored.iter().map(to_header).collect::<Result<_, _>>()?;
        Ok(Some(KeyedAuth { url, headers }))
    }

    /// Forget a keyed server and delete its key; `false` when `name` is not one.
    pub fn remove_api_key(&self, name: &str) -> Result<bool, Error> {
        if !self.vault.store.with(|r| r.keyed.contains_key(name))? {
            return Ok(false);
        }
        self.vault.secrets.delete(&vault::server_account(name)).map_err(VaultError::from)?;
        self.vault.store.update(|r| r.keyed.remove(name))?;
        Ok(true)
    }
}

/// An http(s) URL; plain http only to a loopback address (the key would travel in clear).
fn checked_url(url: &str) -> Result<String, Error> {
    let u = Url::parse(url).map_err(|e| Error::BadKey(format!("{url:?} is not a URL ({e})")))?;
    crate::net::require_secure(&u).map_err(|e| Error::BadKey(format!("{e}: an API key is sent only over https")))?;
    Ok(u.to_string())
}

fn to_header(h: &KeyHeader) -> Result<(HeaderName, HeaderValue), Error> {
    let name = HeaderName::try_from(h.name.as_str()).map_err(|_| Error::BadKey(format!("{:?} is not a header name", h.name)))?;
    if RESERVED.contains(&name.as_str()) || name.as_str().starts_with("mcp-") {
        return Err(Error::BadKey(format!("{name} describes the request and cannot carry a key")));
    }
    let mut value = HeaderValue::try_from(h.value.expose()).map_err(|_| Error::BadKey(format!("the value for {name} cannot be sent in a header (line breaks or control characters)")))?;
    value.set_sensitive(true);
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> KeyHeader {
        KeyHeader { name: name.into(), value: Secret::new(value) }
    }

    #[test]
    fn only_https_or_loopback_urls() {
        assert!(checked_url("https://api.example/mcp").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/mcp").is_ok());
        assert!(checked_url("http://localhost/mcp").is_ok());
        assert!(checked_url("http://api.example/mcp").is_err());
        assert!(checked_url("http://127.0.0.1.evil.example/mcp").is_err());
        assert!(checked_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn headers_are_checked_and_sensitive() {
        let (n, v) = to_header(&header("X-Api-Key", "k-1")).unwrap();
        assert_eq!(n.as_str(), "x-api-key");
        assert!(v.is_sensitive());
        assert!(to_header(&header("Host", "x")).is_err());
        assert!(to_header(&header("Mcp-Session-Id", "x")).is_err());
        assert!(to_header(&header("bad name", "x")).is_err());
        assert!(to_header(&header("X-Api-Key", "a\r\nInjected: 1")).is_err());
    }

    #[test]
    fn a_key_header_never_prints_its_value() {
        assert!(!format!("{:?}", header("X-Api-Key", "sk-live-123")).contains("sk-live"));
    }
}
