//! The two files of mcp-remote's store that matter, typed: `<hash>_client_info.json` (the
//! client mcp-remote registered dynamically, RFC 7591 fields) and `<hash>_tokens.json` (the
//! token response it got, RFC 6749 §5.1, with its own `expires_at`). Secret values are read
//! straight into redacted types, so a `Debug` of either never shows them. Unknown fields
//! (`id_token`, `jwks`, …) are ignored, as mcp-remote's own schema strips them.

use oauth2::{AccessToken, RefreshToken};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::secret::Secret;

/// `<hash>_client_info.json`: a client registration at one authorization server.
#[derive(Debug, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// RFC 7591 §2: absent means `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    pub scope: Option<String>,
    pub client_name: Option<String>,
    /// Seconds since the epoch.
    pub client_id_issued_at: Option<f64>,
    /// Seconds since the epoch; 0 means never.
    pub client_secret_expires_at: Option<f64>,
    /// The issuer the client was registered at (newer versions record it).
    pub issuer: Option<String>,
}

/// `<hash>_tokens.json`: the last token response, with when it ends.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: AccessToken,
    pub token_type: String,
    /// Seconds, as the AS said when the tokens were issued (not when the file was read).
    pub expires_in: Option<f64>,
    pub scope: Option<String>,
    pub refresh_token: Option<RefreshToken>,
    /// Milliseconds since the epoch.
    pub expires_at: Option<f64>,
    /// The scopes mcp-remote asked for.
    pub requested_scope: Option<String>,
    /// The issuer the tokens came from (newer versions record it).
    pub issuer: Option<String>,
}

impl Tokens {
    /// When the access token ends, if the file says (and says something sane).
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        let ms = self.expires_at.filter(|ms| ms.is_finite() && *ms > 0.0)?;
        OffsetDateTime::from_unix_timestamp_nanos((ms as i128) * 1_000_000).ok()
    }

    /// The granted scopes, else the requested ones (space-separated in the file).
    pub fn scopes(&self) -> Vec<String> {
        let text = self.scope.as_deref().or(self.requested_scope.as_deref()).unwrap_or_default();
        text.split_whitespace().map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_as_mcp_remote_writes_them_and_debug_hides_secrets() {
        let client: ClientInfo = serde_json::from_str(
            r#"{"redirect_uris":["http://localhost:9696/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],
                "client_name":"MCP CLI Proxy","client_id":"c-1","client_secret":"cs-very-secret","client_id_issued_at":1760000000,"issuer":"https://as.example"}"#,
        )
        .expect("client info");
        assert_eq!((client.client_id.as_str(), client.issuer.as_deref()), ("c-1", Some("https://as.example")));
        let tokens: Tokens = serde_json::from_str(
            r#"{"access_token":"at-very-secret","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-very-secret","id_token":"x","expires_at":1760003600000,"requested_scope":"read write"}"#,
        )
        .expect("tokens");
        assert_eq!(tokens.expires_at().map(OffsetDateTime::unix_timestamp), Some(1_760_003_600));
        assert_eq!(tokens.scopes(), ["read", "write"]);
        let shown = format!("{client:?} {tokens:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn a_file_without_the_required_fields_is_an_error() {
        assert!(serde_json::from_str::<Tokens>(r#"{"token_type":"Bearer"}"#).is_err());
        assert!(serde_json::from_str::<ClientInfo>(r#"{"client_id":7}"#).is_err());
        let t: Tokens = serde_json::from_str(r#"{"access_token":"a","token_type":"bearer","expires_at":-5}"#).expect("tokens");
        assert_eq!(t.expires_at(), None);
    }
}
