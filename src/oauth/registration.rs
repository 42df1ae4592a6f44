//! Client registration, in the MCP spec's priority order.
//!
//! 1. **Pre-registered**: the user passes a client id (and perhaps a secret, read from an
//!    environment variable, never from argv).
//! 2. **Client ID Metadata Document**: when the AS advertises
//!    `client_id_metadata_document_supported`, an `https` URL the user names is the client id.
//! 3. **Dynamic Client Registration** (RFC 7591): a native public client with a loopback
//!    redirect URI.
//!
//! Otherwise a client registered earlier at the same issuer (`existing`) is reused. A new issuer always
//! means a new registration: credentials never travel between authorization servers.

use serde::Deserialize;
use url::Url;

use crate::net::{FetchError, HttpClient};
use crate::oauth::client::{Client, Credentials, RegistrationKind, TokenAuthMethod};
use crate::oauth::discovery::AuthServerMetadata;
use crate::secret::Secret;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub enum ClientChoice {
    PreRegistered { client_id: String, secret: Option<Secret> },
    MetadataDocument(Url),
    /// Dynamic registration with an initial access token (RFC 7591 §3; Keycloak and others
    /// that allow registration only so). Used once, never stored.
    RegistrationToken(Secret),
    #[default]
    Automatic,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{issuer} supports neither client metadata documents nor dynamic client registration; register a client there (redirect URI http://127.0.0.1/callback, any port; or a fixed one with --callback-port) and pass --client-id (and --client-secret-env)")]
    Unsupported { issuer: String },
    #[error("client registration at {url} failed: {reason}")]
    Failed { url: String, reason: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Invalid(#[from] crate::oauth::client::InvalidClient),
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
    let client = |client_id: String, kind, auth_method| Client { issuer: auth_server.issuer.clone(), client_id, kind, auth_method };
    match choice {
        ClientChoice::PreRegistered { client_id, secret } => {
            let method = secret_method(auth_server, secret.is_some());
            Ok(Credentials { client: client(client_id.clone(), RegistrationKind::PreRegistered, method), secret: secret.clone() })
        }
        ClientChoice::MetadataDocument(url) if auth_server.client_id_metadata_document_supported => Ok(Credentials {
            client: client(url.to_string(), RegistrationKind::MetadataDocument, TokenAuthMethod::None),
            secret: None,
        }),
        _ => match existing.filter(|c| c.client.issuer == auth_server.issuer) {
            Some(c) => Ok(c),
            None => {
                let token = match choice {
                    ClientChoice::RegistrationToken(t) => Some(t),
                    _ => None,
                };
                register_dynamic(http, auth_server, redirect_uri, token).await
            }
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

/// The RFC 8628 device grant's `grant_type`.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grants a new client asks for: the code grant and refresh, and the device grant where
/// the AS offers it, so one client serves a browser sign-in and one with a code.
fn grant_types(auth_server: &AuthServerMetadata) -> Vec<&'static str> {
    let mut grants = vec!["authorization_code", "refresh_token"];
    if auth_server.offers_device_grant() {
        grants.push(DEVICE_CODE_GRANT);
    }
    grants
}

/// RFC 7591 registration of a native public client.
async fn register_dynamic(http: &HttpClient, auth_server: &AuthServerMetadata, redirect_uri: &str, token: Option<&Secret>) -> Result<Credentials, RegistrationError> {
    let url = auth_server
        .registration_endpoint
        .clone()
        .ok_or_else(|| RegistrationError::Unsupported { issuer: auth_server.issuer.clone() })?;
    let body = serde_json::json!({
        "client_name": "mcp-broker",
        "application_type": "native",
        "redirect_uris": [redirect_uri],
        "grant_types": grant_types(auth_server),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let failed = |reason: String| RegistrationError::Failed { url: url.to_string(), reason };
    let r = http
        .send_direct(&url, |c| {
            let req = c.post(url.clone()).json(&body);
            match token {
                Some(t) => req.bearer_auth(t.expose()),
                None => req,
            }
        })
        .await?;
    if !r.status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
        let policy = if matches!(r.status.as_u16(), 401 | 403) {
            "; it refuses dynamic registration (by its policy, as Okta and Keycloak may): register a client there and pass --client-id, or give an initial access token with --registration-token-env VAR"
        } else {
            ""
        };
        return Err(failed(format!("HTTP {}{}{policy}", r.status.as_u16(), detail.map(|d| format!(" ({d})")).unwrap_or_default())));
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
        client: Client { issuer: auth_server.issuer.clone(), client_id: reg.client_id, kind: RegistrationKind::Dynamic, auth_method: method },
        secret: reg.client_secret.map(Secret::new),
    })
}
