//! An OAuth client at one authorization server: who it is (`client_id`, how it was
//! registered, how it authenticates at the token endpoint), its secret if it is
//! confidential, and the endpoints it talks to.
//!
//! A client belongs to exactly one issuer; credentials never travel between authorization
//! servers. Two servers at one issuer may still use two different clients (one
//! pre-registered, one registered dynamically), so a client is named by both: [`ClientKey`].

use oauth2::basic::BasicClient;
use oauth2::{AuthType, AuthUrl, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, RedirectUrl, RevocationUrl, TokenUrl};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::oauth::discovery::AuthServerMetadata;
use crate::secret::Secret;

/// How a client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
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

/// A client's public identity at its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub issuer: String,
    pub client_id: String,
    pub kind: RegistrationKind,
    pub auth_method: TokenAuthMethod,
}

/// What names a client: its issuer and its id there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientKey {
    pub issuer: String,
    pub client_id: String,
}

impl Client {
    pub fn key(&self) -> ClientKey {
        ClientKey { issuer: self.issuer.clone(), client_id: self.client_id.clone() }
    }
}

/// A client ready for use: who it is and, for confidential clients, its secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client: Client,
    pub secret: Option<Secret>,
}

/// The endpoints of an authorization server that a client calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: Url,
    pub token: Url,
    pub revocation: Option<Url>,
}

impl From<&AuthServerMetadata> for Endpoints {
    fn from(m: &AuthServerMetadata) -> Self {
        Self { authorization: m.authorization_endpoint.clone(), token: m.token_endpoint.clone(), revocation: m.revocation_endpoint.clone() }
    }
}

/// The `oauth2` client for one AS, with auth, token and (maybe) revocation endpoints.
pub type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointSet>;

/// The client settings were not usable (a redirect URI that is not a URL).
#[derive(Debug, thiserror::Error)]
#[error("invalid client settings: {0}")]
pub struct InvalidClient(pub String);

impl Credentials {
    pub fn oauth_client(&self, endpoints: &Endpoints) -> OAuthClient {
        let mut client = BasicClient::new(ClientId::new(self.client.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_revocation_url_option(endpoints.revocation.clone().map(RevocationUrl::from_url));
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        let auth = match self.client.auth_method {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            TokenAuthMethod::ClientSecretPost | TokenAuthMethod::None => AuthType::RequestBody,
        };
        client.set_auth_type(auth)
    }

    pub fn with_redirect(client: OAuthClient, redirect_uri: &str) -> Result<OAuthClient, InvalidClient> {
        let uri = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| InvalidClient(e.to_string()))?;
        Ok(client.set_redirect_uri(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials {
            client: Client { issuer: "https://as".into(), client_id: "id".into(), kind: RegistrationKind::PreRegistered, auth_method: TokenAuthMethod::ClientSecretBasic },
            secret: Some(Secret::new("s3cr3t-value")),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn keys_differ_by_client_id_at_one_issuer() {
        let a = Client { issuer: "https://as".into(), client_id: "a".into(), kind: RegistrationKind::Dynamic, auth_method: TokenAuthMethod::None };
        let b = Client { client_id: "b".into(), kind: RegistrationKind::PreRegistered, ..a.clone() };
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key().issuer, b.key().issuer);
    }
}
