//! Canonical MCP server URIs (RFC 8707 §2, RFC 9728 §3.3, MCP "Canonical Server URI").
//!
//! The canonical URI names the resource a token is minted for (`resource`, the JWT `aud`).
//! It is absolute, `http(s)`, has no fragment, lower-cases scheme and host (the `url` crate
//! does that for special schemes) and drops the lone `/` of an empty path, since
//! `https://a.example` and `https://a.example/` name the same server.
//!
//! **Path-prefix rule.** A Protected Resource Metadata document may name a resource that
//! is the server's URI itself or a path prefix of it on a segment boundary, at the same
//! origin (`https://a.example` covers `https://a.example/mcp`, `https://a.example/m` does
//! not). The PRM's `resource` is then the audience requested, since it is what the server
//! says it validates; anything else (another origin, a sibling path) is refused.

use std::fmt;

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    #[error("{0:?} is not an absolute URL")]
    NotAbsolute(String),
    #[error("{0} must be http or https")]
    Scheme(String),
    #[error("{0} must not contain a fragment")]
    Fragment(String),
    #[error("{0} must not contain credentials")]
    Credentials(String),
}

/// An MCP server's canonical URI.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResourceUri(Url);

impl ResourceUri {
    pub fn parse(s: &str) -> Result<Self, CanonicalError> {
        let url = Url::parse(s.trim()).map_err(|_| CanonicalError::NotAbsolute(s.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(CanonicalError::Scheme(s.to_owned()));
        }
        if url.fragment().is_some() {
            return Err(CanonicalError::Fragment(s.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CanonicalError::Credentials(s.to_owned()));
        }
        Ok(Self(url))
    }

    /// The URL to send requests to.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The canonical string: no trailing `/` for an empty path.
    pub fn as_canonical(&self) -> String {
        let s = self.0.as_str();
        match (self.0.path(), self.0.query()) {
            ("/", None) => s.trim_end_matches('/').to_owned(),
            _ => s.to_owned(),
        }
    }

    /// Whether `self` (from a PRM document) covers `server` per the path-prefix rule.
    pub fn covers(&self, server: &ResourceUri) -> bool {
        let (a, b) = (&self.0, &server.0);
        if a.origin() != b.origin() || a.query().is_some() && a.query() != b.query() {
            return false;
        }
        let prefix = a.path().trim_end_matches('/');
        let path = b.path();
        path == prefix || path.trim_end_matches('/') == prefix || path.starts_with(&format!("{prefix}/"))
    }

    /// A short default name for the server: its host, plus the port when not the default.
    pub fn default_name(&self) -> String {
        let host = self.0.host_str().unwrap_or("server").trim_matches(['[', ']']);
        match self.0.port() {
            Some(p) => format!("{host}-{p}"),
            None => host.to_owned(),
        }
        .replace(':', "-")
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_canonical())
    }
}

impl fmt::Debug for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceUri({})", self.as_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ResourceUri {
        ResourceUri::parse(s).unwrap()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(r("HTTPS://MCP.Example.COM").as_canonical(), "https://mcp.example.com");
        assert_eq!(r("https://mcp.example.com/").as_canonical(), "https://mcp.example.com");
        assert_eq!(r("https://mcp.example.com:443/mcp").as_canonical(), "https://mcp.example.com/mcp");
        assert_eq!(r("https://mcp.example.com:8443").as_canonical(), "https://mcp.example.com:8443");
        assert_eq!(r("https://mcp.example.com/server/mcp").as_canonical(), "https://mcp.example.com/server/mcp");
        assert_eq!(r("http://[::1]:80/mcp").as_canonical(), "http://[::1]/mcp");
    }

    #[test]
    fn invalid_uris() {
        assert!(matches!(ResourceUri::parse("mcp.example.com"), Err(CanonicalError::NotAbsolute(_))));
        assert!(matches!(ResourceUri::parse("https://mcp.example.com#frag"), Err(CanonicalError::Fragment(_))));
        assert!(matches!(ResourceUri::parse("ftp://mcp.example.com"), Err(CanonicalError::Scheme(_))));
        assert!(matches!(ResourceUri::parse("https://u:p@mcp.example.com"), Err(CanonicalError::Credentials(_))));
    }

    #[test]
    fn path_prefix_rule() {
        let server = r("https://a.example/tenant/mcp");
        assert!(r("https://a.example/tenant/mcp").covers(&server));
        assert!(r("https://A.EXAMPLE/tenant/mcp/").covers(&server));
        assert!(r("https://a.example/tenant").covers(&server));
        assert!(r("https://a.example").covers(&server));
        assert!(!r("https://a.example/ten").covers(&server));
        assert!(!r("https://a.example/tenant/mcp/deeper").covers(&server));
        assert!(!r("https://b.example/tenant/mcp").covers(&server));
        assert!(!r("http://a.example/tenant/mcp").covers(&server));
        assert!(!r("https://a.example:8443/tenant/mcp").covers(&server));
    }

    #[test]
    fn default_names() {
        assert_eq!(r("https://mcp.linear.app/mcp").default_name(), "mcp.linear.app");
        assert_eq!(r("http://127.0.0.1:4000/mcp").default_name(), "127.0.0.1-4000");
        assert_eq!(r("http://[::1]:4000/mcp").default_name(), "--1-4000");
    }
}
