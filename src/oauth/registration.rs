//! Client registration, in the MCP spec's priority order, keyed by issuer.
//!
//! 1. **Pre-registered**: the user passes a client id (and perhaps a secret, read from an
//!    environment variable, never from argv).
//! 2. **Client ID Metadata Document**: when the AS advertises
//!    `client_id_metadata_document_supported`, an `https` URL the user names is the client id.
//! 3. **Dynamic Client Registration** (RFC 7591): a native public client with a loopback
//!    redirect URI.
//!
//! Otherwise a client registered earlier at the same issuer is reused. A new issuer always
//! means a new registration: credentials never travel between authorization servers.

use oauth2::basic::BasicClient;
use oauth2::{AuthType, AuthUrl, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, RedirectUrl, RevocationUrl, TokenUrl};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::oauth::discovery::AuthServerMetadata;
use crate::net::{FetchError, HttpClient};
use crate::secret::Secret;
use crate::vault::{ClientRecord, RegistrationKind, TokenAuthMethod};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub enum ClientChoice {
    PreRegistered { client_id: String, secret: Option<Secret> },
    MetadataDocument(Url),
    #[default]
    Automatic,
}

/// A client ready for use: its record and, for confidential clients, its secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub record: ClientRecord,
    pub secret: Option<Secret>,
}

/// The `oauth2` client for one AS, with auth, token and (maybe) revocation endpoints.
pub type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointSet>;

impl Credentials {
    pub fn oauth_client(&self, auth_server: &AuthServerMetadata) -> OAuthClient {
        let mut client = BasicClient::new(ClientId::new(self.record.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(auth_server.authorization_endpoint.clone()))
            .set_token_uri(TokenUrl::from_url(auth_server.token_endpoint.clone()))
            .set_revocation_url_option(auth_server.revocation_endpoint.clone().map(RevocationUrl::from_url));
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        let auth = match self.record.auth_method {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            TokenAuthMethod::ClientSecretPost | TokenAuthMethod::None => AuthType::RequestBody,
        };
        client.set_auth_type(auth)
    }

    pub fn with_redirect(client: OAuthClient, redirect_uri: &str) -> Result<OAuthClient, RegistrationError> {
        let uri = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| RegistrationError::Invalid(e.to_string()))?;
        Ok(client.set_redirect_uri(uri))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{issuer} supports neither client metadata documents nor dynamic client registration; pass --client-id (and --client-secret-env) for a client registered there")]
    Unsupported { issuer: String },
    #[error("client registration at {url} failed: {reason}")]
    Failed { url: String, reason: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("invalid client settings: {0}")]
    Invalid(String),
}

/// Choose or obtain a client at `auth_server`. `existing` is a client this home already
/// holds for the same issuer (with its secret).
pub async fn obtain(
    http: &HttpClient,
    auth_server: &AuthServerMetadata,
    choice: &ClientChoice,
    existing: Option<Credentials>,
    redirect_uri: &str,
) -> Result<Credentials, RegistrationError> {
    let record = |client_id: String, kind, auth_method, has_secret| ClientRecord {
        issuer: auth_server.issuer.clone(),
        client_id,
        kind,
        auth_method,
        has_secret,
        registered_at: OffsetDateTime::now_utc(),
    };
    match choice {
        ClientChoice::PreRegistered { client_id, secret } => {
            let method = secret_method(auth_server, secret.is_some());
            Ok(Credentials { record: record(client_id.clone(), RegistrationKind::PreRegistered, method, secret.is_some()), secret: secret.clone() })
        }
        ClientChoice::MetadataDocument(url) if auth_server.client_id_metadata_document_supported => Ok(Credentials {
            record: record(url.to_string(), RegistrationKind::MetadataDocument, TokenAuthMethod::None, false),
            secret: None,
        }),
        _ => match existing.filter(|c| c.record.issuer == auth_server.issuer) {
            Some(c) => Ok(c),
            None => register_dynamic(http, auth_server, redirect_uri).await,
        },
    }
}

/// How a client with (or without) a secret authenticates, given what the AS supports.
fn secret_method(auth_server: &AuthServerMetadata, has_secret: bool) -> TokenAuthMethod {
    let supports = |m: &str| auth_server.token_endpoint_auth_methods_supported.as_ref().is_none_or(|v| v.iter().any(|x| x == m));
    match (has_secret, supports("client_secret_basic")) {
        (false, _) => TokenAuthMethod::None,
        (true, true) => TokenAuthMethod::ClientSecretBasic,
        (true, false) => TokenAuthMethod::ClientSecretPost,
    }
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// RFC 7591 registration of a native public client.
async fn register_dynamic(http: &HttpClient, auth_server: &AuthServerMetadata, redirect_uri: &str) -> Result<Credentials, RegistrationError> {
    let url = auth_server
        .registration_endpoint
        .clone()
        .ok_or_else(|| RegistrationError::Unsupported { issuer: auth_server.issuer.clone() })?;
    let body = serde_json::json!({
        "client_name": "mcp-broker",
        "application_type": "native",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let failed = |reason: String| RegistrationError::Failed { url: url.to_string(), reason };
    let r = http.send_direct(&url, |c| c.post(url.clone()).json(&body)).await?;
    if !r.status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
        return Err(failed(format!("HTTP {}{}", r.status.as_u16(), detail.map(|d| format!(" ({d})")).unwrap_or_default())));
    }
    let reg: RegistrationResponse = serde_json::from_slice(&r.body).map_err(|e| failed(format!("invalid response ({e})")))?;
    if reg.client_id.is_empty() {
        return Err(failed("no client_id in the response".into()));
    }
    let method = match (reg.client_secret.is_some(), reg.token_endpoint_auth_method.as_deref()) {
        (false, _) => TokenAuthMethod::None,
        (true, Some("client_secret_post")) => TokenAuthMethod::ClientSecretPost,
        (true, _) => TokenAuthMethod::ClientSecretBasic,
    };
    Ok(Credentials {
        record: ClientRecord {
            issuer: auth_server.issuer.clone(),
            client_id: reg.client_id,
            kind: RegistrationKind::Dynamic,
            auth_method: method,
            has_secret: reg.client_secret.is_some(),
            registered_at: OffsetDateTime::now_utc(),
        },
        secret: reg.client_secret.map(Secret::new),
    })
}
