//! A well-formed header built from arbitrary parameters (RFC 9110 §11.6.1 quoted-strings,
//! escapes included) must parse back to exactly those parameters, whatever challenges
//! come before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::oauth::discovery::www_authenticate::{bearer_challenge, parse};

fn token(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c)).take(20).collect()
}

/// Characters a header value can carry: HTAB, SP, VCHAR, obs-text (non-ASCII).
fn header_text(s: &str) -> String {
    s.chars().filter(|&c| c == '\t' || (c >= ' ' && c != '\u{7f}')).collect()
}

fn quote(v: &str) -> String {
    let mut q = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fuzz_target!(|input: (String, Vec<(String, String)>, bool)| {
    let (scheme, params, with_prefix) = input;
    let scheme = token(&scheme);
    if scheme.is_empty() {
        return;
    }
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| (token(n), header_text(v)))
        .filter(|(n, _)| !n.is_empty())
        .take(8)
        .collect();
    let list: Vec<String> = params.iter().map(|(n, v)| format!("{n}={}", quote(v))).collect();
    let mut header = if list.is_empty() { scheme.clone() } else { format!("{scheme} {}", list.join(", ")) };
    if with_prefix {
        header = format!("Basic realm=\"a, b\", Negotiate abc==, {header}");
    }
    let parsed = parse(&header);
    let c = parsed.last().unwrap_or_else(|| panic!("nothing parsed from {header:?}"));
    assert_eq!(c.scheme, scheme, "scheme of {header:?}");
    let want: Vec<(String, String)> = params.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
    assert_eq!(c.params, want, "params of {header:?}");
    if scheme.eq_ignore_ascii_case("bearer") {
        let b = bearer_challenge([header.as_str()]).expect("a Bearer challenge");
        assert_eq!(b.scope.as_deref(), c.param("scope"));
    }
});
