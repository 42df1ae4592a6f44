//! `WWW-Authenticate` from a hostile MCP server: arbitrary bytes, one header value a line.
//! Never a panic, never a hang; what comes out is well-formed and consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::oauth::discovery::www_authenticate::{bearer_challenge, parse, split_scopes};

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let mut all = Vec::new();
    for v in &values {
        for c in parse(v) {
            assert!(!c.scheme.is_empty() && c.scheme.bytes().all(is_tchar), "scheme {:?} from {v:?}", c.scheme);
            assert!(c.token68.is_none() || c.params.is_empty(), "both token68 and params from {v:?}");
            for (name, _) in &c.params {
                assert!(!name.is_empty() && name.bytes().all(is_tchar), "param name {name:?} from {v:?}");
                assert_eq!(name, &name.to_ascii_lowercase(), "param names are lower-cased");
            }
            all.push(c);
        }
    }
    let first = all.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer"));
    match (bearer_challenge(values.iter().copied()), first) {
        (Some(b), Some(c)) => {
            assert_eq!(b.scope.as_deref(), c.param("scope"));
            assert_eq!(b.resource_metadata.as_deref(), c.param("resource_metadata"));
            assert_eq!(b.error.as_deref(), c.param("error"));
            for s in b.scopes() {
                assert!(!s.is_empty() && !s.contains(' '));
            }
        }
        (None, None) => {}
        (b, c) => panic!("bearer_challenge {b:?} disagrees with parse {c:?}"),
    }
    for s in split_scopes(&text) {
        assert!(!s.is_empty() && !s.contains(' '));
    }
});
