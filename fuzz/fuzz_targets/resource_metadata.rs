//! RFC 9728 protected resource metadata from a hostile server, and the canonical URI rules.
//! Input: the server URL on the first line, the document after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::oauth::discovery::canonical::ResourceUri;
use mcp_broker::oauth::discovery::resource_metadata::{well_known_urls, ProtectedResourceMetadata};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (first, body) = (String::from_utf8_lossy(&data[..split]), &data[split.min(data.len())..]);
    let default = ResourceUri::parse("https://mcp.example.com/mcp").unwrap();
    let server = match ResourceUri::parse(&first) {
        Ok(u) => {
            // The canonical form is a fixed point, and a resource covers itself.
            let c = u.as_canonical();
            let again = ResourceUri::parse(&c).unwrap_or_else(|e| panic!("canonical {c:?} of {first:?} does not parse: {e}"));
            assert_eq!(again.as_canonical(), c, "canonical form of {first:?} is not stable");
            assert!(u.covers(&u), "{c} does not cover itself");
            for w in well_known_urls(u.url()) {
                assert_eq!(w.origin(), u.url().origin(), "a well-known URL left the origin");
                assert!(w.path().starts_with("/.well-known/oauth-protected-resource"));
            }
            let _ = u.default_name();
            u
        }
        Err(_) => default,
    };
    match ProtectedResourceMetadata::validate_for(body, &server) {
        Ok((prm, resource)) => {
            assert!(resource.covers(&server), "accepted a document for {} at {}", resource, server);
            assert_eq!(resource.url().origin(), server.url().origin());
            assert!(!prm.authorization_servers.is_empty());
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
});
