//! RFC 7009 token revocation.
//!
//! Written by hand because the `oauth2` crate refuses any non-https revocation endpoint,
//! while the broker (like RFC 8252) also allows loopback authorization servers.

use base64::Engine;
use url::Url;

use crate::net::HttpClient;
use crate::oauth::client::{Credentials, TokenAuthMethod};

/// Revoke one token. Success is HTTP 200 (RFC 7009 §2.2); an AS that does not revoke
/// this token type (`unsupported_token_type`, e.g. for JWT access tokens) is not a failure,
/// since revoking the refresh token is what ends the grant.
pub async fn revoke(http: &HttpClient, endpoint: &Url, credentials: &Credentials, token: &str, hint: &str) -> Result<(), String> {
    let mut form = vec![("token", token.to_owned()), ("token_type_hint", hint.to_owned())];
    let basic = match (&credentials.secret, credentials.client.auth_method) {
        (Some(secret), TokenAuthMethod::ClientSecretBasic) => Some(basic_auth(&credentials.client.client_id, secret.expose())),
        (Some(secret), _) => {
            form.push(("client_id", credentials.client.client_id.clone()));
            form.push(("client_secret", secret.expose().to_owned()));
            None
        }
        (None, _) => {
            form.push(("client_id", credentials.client.client_id.clone()));
            None
        }
    };
    let r = http
        .send_direct(endpoint, |c| {
            let req = c.post(endpoint.clone()).form(&form);
            match &basic {
                Some(h) => req.header("authorization", h),
                None => req,
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    if r.status.is_success() {
        return Ok(());
    }
    let error = serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
    match error.as_deref() {
        Some("unsupported_token_type") => Ok(()),
        Some(e) => Err(format!("HTTP {} ({e})", r.status.as_u16())),
        None => Err(format!("HTTP {}", r.status.as_u16())),
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1): both parts form-urlencoded, then base64.
fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}
