//! Authorization Server Metadata (RFC 8414) and OpenID Connect Discovery 1.0.
//!
//! For an issuer with a path (`https://as.example/tenant`) the spec's order is the
//! OAuth path-inserted URL, the OIDC path-inserted URL, then OIDC path-appended; for an
//! issuer without a path, the OAuth then the OIDC root URL. The document's `issuer` must
//! equal the issuer string exactly (RFC 8414 §3.3), PKCE `S256` must be advertised, and
//! every endpoint must be `https` (or loopback `http`).

use serde::{Deserialize, Serialize};
use url::Url;

use crate::net::{require_secure, FetchError};

/// The fields of RFC 8414 §2 the broker uses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub registration_endpoint: Option<Url>,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// RFC 8628 §4: where a device (or a terminal without a browser) asks for a user code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// The `prompt` values it takes (OpenID Connect Prompt Create §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_values_supported: Option<Vec<String>>,
}

/// The metadata URLs to try for `issuer`, in the spec's priority order.
pub fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |p: String| {
        let mut u = issuer.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    if path.is_empty() {
        vec![at("/.well-known/oauth-authorization-server".into()), at("/.well-known/openid-configuration".into())]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

/// Issuers compare as exact strings, with one allowance: a protected resource may
/// advertise a root issuer with a trailing slash (`http://as.example/`) that the AS itself
/// spells without one. Same origin, same (empty) path: the same AS. The document's own
/// spelling is then recorded and used, exactly, for the RFC 9207 `iss` check.
fn same_issuer(found: &str, advertised: &str) -> bool {
    let root_slash = |a: &str, b: &str| a.strip_suffix('/') == Some(b) && !b.trim_start_matches("https://").trim_start_matches("http://").contains('/');
    found == advertised || root_slash(advertised, found) || root_slash(found, advertised)
}

/// Why an AS metadata document was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("is not valid authorization server metadata ({0})")]
    Json(String),
    #[error("names issuer {found:?}, expected exactly {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("does not support PKCE S256 (code_challenge_methods_supported lacks \"S256\")")]
    NoS256,
    #[error("does not say whether it supports PKCE (it lists no code_challenge_methods_supported); if you know it supports S256, sign in with --assume-s256")]
    NoPkceMethods,
    #[error("has an authorization_endpoint that is not http(s): {0}")]
    AuthorizationScheme(String),
    #[error("has an insecure {which}: {source}")]
    Insecure { which: &'static str, source: FetchError },
}

impl AuthServerMetadata {
    /// Parse a metadata document and check it belongs to `expected_issuer` and is safe to use.
    pub fn validate(body: &[u8], expected_issuer: &str) -> Result<Self, MetadataError> {
        Self::validate_as(body, expected_issuer, false)
    }

    /// [`Self::validate`], taking S256 as supported where the document does not say
    /// (`assume_s256`: the user's `--assume-s256`).
    pub fn validate_as(body: &[u8], expected_issuer: &str, assume_s256: bool) -> Result<Self, MetadataError> {
        let m: Self = serde_json::from_slice(body).map_err(|e| MetadataError::Json(e.to_string()))?;
        if !same_issuer(&m.issuer, expected_issuer) {
            return Err(MetadataError::IssuerMismatch { expected: expected_issuer.into(), found: m.issuer });
        }
        match &m.code_challenge_methods_supported {
            Some(methods) if methods.iter().any(|x| x == "S256") => {}
            Some(_) => return Err(MetadataError::NoS256),
            None if assume_s256 => {}
            None => return Err(MetadataError::NoPkceMethods),
        }
        if !matches!(m.authorization_endpoint.scheme(), "http" | "https") {
            return Err(MetadataError::AuthorizationScheme(m.authorization_endpoint.to_string()));
        }
        m.check_endpoints()?;
        Ok(m)
    }

    fn check_endpoints(&self) -> Result<(), MetadataError> {
        let endpoints = [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("registration_endpoint", self.registration_endpoint.as_ref()),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            ("device_authorization_endpoint", self.device_authorization_endpoint.as_ref()),
        ];
        for (which, url) in endpoints {
            if let Some(url) = url {
                require_secure(url).map_err(|source| MetadataError::Insecure { which, source })?;
            }
        }
        Ok(())
    }

    /// Whether the AS offers the device authorization grant (RFC 8628): it has the endpoint,
    /// and its `grant_types_supported`, when it lists any, include the grant.
    pub fn offers_device_grant(&self) -> bool {
        let listed = |g: &Vec<String>| g.iter().any(|x| x == "urn:ietf:params:oauth:grant-type:device_code");
        self.device_authorization_endpoint.is_some() && self.grant_types_supported.as_ref().is_none_or(listed)
    }

    /// Whether the AS lists `offline_access`, so asking for it may earn a refresh token.
    pub fn offers_offline_access(&self) -> bool {
        self.scopes_supported.as_ref().is_some_and(|s| s.iter().any(|x| x == "offline_access"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(s: &str) -> Vec<String> {
        metadata_urls(&Url::parse(s).unwrap()).into_iter().map(String::from).collect()
    }

    #[test]
    fn order_with_and_without_path() {
        assert_eq!(
            urls("https://as.example/tenant1"),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant1",
                "https://as.example/.well-known/openid-configuration/tenant1",
                "https://as.example/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://as.example"),
            ["https://as.example/.well-known/oauth-authorization-server", "https://as.example/.well-known/openid-configuration"]
        );
        assert_eq!(urls("https://as.example/").len(), 2);
    }

    fn doc(issuer: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"https://as.example/auth","token_endpoint":"https://as.example/token","code_challenge_methods_supported":["S256"]{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert!(AuthServerMetadata::validate(&doc("https://as.example", ""), "https://as.example").is_ok());
        assert!(AuthServerMetadata::validate(&doc("https://as.example", ""), "https://as.example/").is_ok());
        for wrong in ["https://as.example/x", "https://AS.example", "https://evil.example", "https://as.example.evil"] {
            let e = AuthServerMetadata::validate(&doc(wrong, ""), "https://as.example").unwrap_err();
            assert!(matches!(e, MetadataError::IssuerMismatch { .. }), "{wrong}");
        }
    }

    #[test]
    fn requires_s256_and_secure_endpoints() {
        let plain = br#"{"issuer":"https://as.example","authorization_endpoint":"https://as.example/a","token_endpoint":"https://as.example/t","code_challenge_methods_supported":["plain"]}"#;
        assert!(matches!(AuthServerMetadata::validate(plain, "https://as.example"), Err(MetadataError::NoS256)));
        let insecure = doc("https://as.example", r#","revocation_endpoint":"http://evil.example/revoke""#);
        assert!(matches!(AuthServerMetadata::validate(&insecure, "https://as.example"), Err(MetadataError::Insecure { which: "revocation_endpoint", .. })));
        let js = br#"{"issuer":"https://as.example","authorization_endpoint":"javascript:alert(1)","token_endpoint":"https://as.example/t","code_challenge_methods_supported":["S256"]}"#;
        assert!(matches!(AuthServerMetadata::validate(js, "https://as.example"), Err(MetadataError::AuthorizationScheme(_))));
    }
}
