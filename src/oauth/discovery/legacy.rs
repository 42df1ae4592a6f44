//! Discovery for servers written to MCP 2025-03-26, which predates Protected Resource Metadata.
//!
//! That revision's authorization section: the *authorization base URL* is the server's URL
//! with its path discarded; the AS metadata is fetched there (RFC 8414), and when there is
//! none the endpoints are `/authorize`, `/token` and `/register` at that base. Taken only
//! when the server's 401 carries a `Bearer` challenge that names no `resource_metadata` and
//! no well-known PRM URL answers. The AS is then the server's own origin: tokens still go
//! only where they were minted, and with no registration endpoint that answers, the sign-in
//! fails before any browser opens.

use url::Url;

use super::{AuthServerMetadata, ProtectedResourceMetadata, ResourceUri};

/// The authorization base URL of `server`: its origin, without a path (`http://h:1`).
pub fn base_url(server: &ResourceUri) -> String {
    server.url().origin().ascii_serialization()
}

/// The metadata a 2025-03-26 server implies when it publishes none: the default endpoints at
/// its base. PKCE S256 is assumed, as that revision requires it of every AS.
pub fn default_auth_server(base: &str) -> Result<AuthServerMetadata, url::ParseError> {
    let at = |path: &str| Url::parse(base)?.join(path);
    Ok(AuthServerMetadata {
        issuer: base.to_owned(),
        authorization_endpoint: at("/authorize")?,
        token_endpoint: at("/token")?,
        registration_endpoint: Some(at("/register")?),
        revocation_endpoint: None,
        device_authorization_endpoint: None,
        grant_types_supported: None,
        scopes_supported: None,
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        token_endpoint_auth_methods_supported: None,
        authorization_response_iss_parameter_supported: false,
        client_id_metadata_document_supported: false,
        prompt_values_supported: None,
    })
}

/// The resource metadata the server would have published: itself, guarded by its base.
pub fn implied_resource_metadata(server: &ResourceUri, base: &str) -> ProtectedResourceMetadata {
    ProtectedResourceMetadata {
        resource: server.as_canonical(),
        authorization_servers: vec![base.to_owned()],
        scopes_supported: None,
        resource_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_drops_the_path() {
        let server = ResourceUri::parse("https://mcp.example:8443/v1/mcp").unwrap();
        assert_eq!(base_url(&server), "https://mcp.example:8443");
    }

    #[test]
    fn default_endpoints_sit_at_the_base() {
        let m = default_auth_server("http://127.0.0.1:9").unwrap();
        assert_eq!(m.authorization_endpoint.as_str(), "http://127.0.0.1:9/authorize");
        assert_eq!(m.token_endpoint.as_str(), "http://127.0.0.1:9/token");
        assert_eq!(m.registration_endpoint.unwrap().as_str(), "http://127.0.0.1:9/register");
        assert!(!m.authorization_response_iss_parameter_supported);
    }
}
