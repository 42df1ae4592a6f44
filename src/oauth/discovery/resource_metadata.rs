//! OAuth 2.0 Protected Resource Metadata (RFC 9728): which authorization servers protect
//! an MCP server, and which scopes it knows.
//!
//! The document's URL comes from the 401 challenge's `resource_metadata` when given, else
//! the well-known URL with the server's path inserted, else the root well-known URL.

use serde::Deserialize;
use url::Url;

use super::canonical::ResourceUri;

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The fields of RFC 9728 §2 the broker uses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub resource_name: Option<String>,
}

/// Where to look for the document when the challenge names none, in the spec's order.
pub fn well_known_urls(server: &Url) -> Vec<Url> {
    let mut root = server.clone();
    root.set_query(None);
    root.set_fragment(None);
    let path = server.path().trim_end_matches('/');
    let mut urls = Vec::with_capacity(2);
    if !path.is_empty() {
        let mut inserted = root.clone();
        inserted.set_path(&format!("{WELL_KNOWN}{path}"));
        urls.push(inserted);
    }
    root.set_path(WELL_KNOWN);
    urls.push(root);
    urls
}

impl ProtectedResourceMetadata {
    /// Parse and check the document against the server it was fetched for: its `resource`
    /// must cover the server's canonical URI (see [`ResourceUri::covers`]).
    pub fn validate_for(body: &[u8], server: &ResourceUri) -> Result<(Self, ResourceUri), String> {
        let prm: Self = serde_json::from_slice(body).map_err(|e| format!("is not valid metadata JSON ({e})"))?;
        let resource = ResourceUri::parse(&prm.resource).map_err(|e| format!("has an invalid resource: {e}"))?;
        if !resource.covers(server) {
            return Err(format!("is for resource {}, not for {}", prm.resource, server));
        }
        if prm.authorization_servers.is_empty() {
            return Err("names no authorization_servers".into());
        }
        Ok((prm, resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(s: &str) -> Vec<String> {
        well_known_urls(&Url::parse(s).unwrap()).into_iter().map(String::from).collect()
    }

    #[test]
    fn well_known_order() {
        assert_eq!(
            urls("https://a.example/public/mcp?x=1"),
            ["https://a.example/.well-known/oauth-protected-resource/public/mcp", "https://a.example/.well-known/oauth-protected-resource"]
        );
        assert_eq!(urls("https://a.example/"), ["https://a.example/.well-known/oauth-protected-resource"]);
        assert_eq!(urls("http://127.0.0.1:9/mcp/"), ["http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp", "http://127.0.0.1:9/.well-known/oauth-protected-resource"]);
    }

    #[test]
    fn validates_resource() {
        let server = ResourceUri::parse("https://a.example/mcp").unwrap();
        let ok = br#"{"resource":"https://a.example/mcp","authorization_servers":["https://as.example"]}"#;
        assert!(ProtectedResourceMetadata::validate_for(ok, &server).is_ok());
        let other = br#"{"resource":"https://evil.example/mcp","authorization_servers":["https://as.example"]}"#;
        assert!(ProtectedResourceMetadata::validate_for(other, &server).unwrap_err().contains("not for"));
        let none = br#"{"resource":"https://a.example/mcp","authorization_servers":[]}"#;
        assert!(ProtectedResourceMetadata::validate_for(none, &server).is_err());
        assert!(ProtectedResourceMetadata::validate_for(b"<html>", &server).is_err());
    }
}
