//! RFC 8414 authorization server metadata from a hostile server.
//! Input: the expected issuer on the first line, the document after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::oauth::discovery::auth_server::{metadata_urls, AuthServerMetadata};
use mcp_broker::net::require_secure;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0);
    let issuer = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = &data[split.min(data.len())..];
    // Discovery only builds these for http(s) issuers (after require_secure).
    if let Ok(u) = url::Url::parse(&issuer).and_then(|u| if require_secure(&u).is_ok() { Ok(u) } else { Err(url::ParseError::EmptyHost) }) {
        for m in metadata_urls(&u) {
            assert_eq!(m.origin(), u.origin(), "a metadata URL left the issuer's origin");
            assert!(m.path().contains("/.well-known/"));
        }
    }
    if let Ok(m) = AuthServerMetadata::validate(body, &issuer) {
        let trimmed = |s: &str| s.trim_end_matches('/').to_owned();
        assert!(m.issuer == issuer || trimmed(&m.issuer) == trimmed(&issuer), "issuer {:?} accepted for {issuer:?}", m.issuer);
        assert!(m.code_challenge_methods_supported.as_ref().is_some_and(|v| v.iter().any(|x| x == "S256")));
        for u in [Some(&m.authorization_endpoint), Some(&m.token_endpoint), m.registration_endpoint.as_ref(), m.revocation_endpoint.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(require_secure(u).is_ok(), "accepted an insecure endpoint {u}");
        }
        let _ = m.offers_offline_access();
    }
});
