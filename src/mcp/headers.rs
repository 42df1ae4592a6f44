//! Which headers cross the proxy, in each direction.
//!
//! Upstream gets the MCP transport headers (both revisions: `Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Last-Event-ID`, `Mcp-Method`, `Mcp-Name`, any `Mcp-Param-*` or
//! other `Mcp-*`) and content negotiation, never the host's `Authorization`, cookies,
//! `Origin` or `Host`: the broker's token is the only credential that goes out. The host
//! gets the transport headers back, never the upstream's `WWW-Authenticate` or cookies.

use http::header::{HeaderMap, HeaderName, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};

/// The header by which a bridge says where its host's user is, when its environment can
/// tell ([`crate::oauth::login::browser::headless_if_known`]): why no browser can be opened
/// there (`SSH session`), or `no` when one can (`$BROWSER` is set). The service was perhaps
/// started elsewhere (from an SSH session that has since ended, say); without the header
/// its own environment decides.
pub const HEADLESS_HEADER: &str = "x-mcp-broker-headless";

/// Headers a host's request may pass upstream.
pub fn to_upstream(from_host: &HeaderMap) -> HeaderMap {
    filter(from_host, |name| matches!(name, "content-type" | "accept" | "last-event-id") || is_mcp(name))
}

/// Headers an upstream response may pass back to the host.
pub fn to_host(from_upstream: &HeaderMap) -> HeaderMap {
    filter(from_upstream, |name| {
        matches!(name, "content-type" | "cache-control" | "x-accel-buffering" | "retry-after") || is_mcp(name)
    })
}

fn is_mcp(name: &str) -> bool {
    name.starts_with("mcp-")
}

fn filter(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if keep(name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Defaults a Streamable HTTP POST needs when a host left them out.
pub fn ensure_post_defaults(headers: &mut HeaderMap) {
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, http::HeaderValue::from_static("application/json, text/event-stream"));
    }
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
}

/// Responses that stream should not be cached by anything in between.
pub fn no_store() -> (HeaderName, http::HeaderValue) {
    (CACHE_CONTROL, http::HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_cross() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer host-key"),
            ("cookie", "a=b"),
            ("origin", "http://evil"),
            ("host", "127.0.0.1:1"),
            ("mcp-session-id", "s1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("mcp-param-region", "eu"),
            ("last-event-id", "7"),
            ("content-type", "application/json"),
            ("x-mcp-broker-host", "cursor"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().unwrap());
        }
        let up = to_upstream(&h);
        for gone in ["authorization", "cookie", "origin", "host", "x-mcp-broker-host"] {
            assert!(!up.contains_key(gone), "{gone}");
        }
        for kept in ["mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-region", "last-event-id"] {
            assert!(up.contains_key(kept), "{kept}");
        }
        let mut back = HeaderMap::new();
        back.insert("www-authenticate", "Bearer error=\"invalid_token\"".parse().unwrap());
        back.insert("set-cookie", "x=y".parse().unwrap());
        back.insert("mcp-session-id", "s1".parse().unwrap());
        let down = to_host(&back);
        assert!(!down.contains_key("www-authenticate") && !down.contains_key("set-cookie"));
        assert!(down.contains_key("mcp-session-id"));
    }
}
