//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1) and the Bearer challenge (RFC 6750 §3).
//!
//! A header may carry several challenges, each a scheme followed by either a token68 or a
//! comma-separated list of `name=value` parameters, where a value is a token or a quoted
//! string with `\` escapes. Commas separate both parameters and challenges, so a new
//! challenge is recognised by a token that is not followed by `=`.
//! Hand-written: no maintained crate parses multi-challenge headers with token68 correctly.

/// One challenge: its scheme and either a token68 or its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    pub scheme: String,
    pub token68: Option<String>,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The first value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What an MCP server says in its `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BearerChallenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl BearerChallenge {
    /// The challenged scopes, split on spaces.
    pub fn scopes(&self) -> Vec<String> {
        self.scope.as_deref().map(split_scopes).unwrap_or_default()
    }
}

/// Split a space-delimited OAuth scope string (RFC 6749 §3.3).
pub fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

/// Find the first `Bearer` challenge among all `WWW-Authenticate` header values.
pub fn bearer_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<BearerChallenge> {
    let c = values
        .into_iter()
        .flat_map(parse)
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let get = |n: &str| c.param(n).map(str::to_owned);
    Some(BearerChallenge {
        resource_metadata: get("resource_metadata"),
        scope: get("scope"),
        error: get("error"),
        error_description: get("error_description"),
    })
}

/// Parse one header value into its challenges. Malformed trailing input is dropped, never
/// a panic: what parsed cleanly before it is kept.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_commas_ws();
        let Some(scheme) = p.token() else { break };
        let mut c = Challenge { scheme, ..Default::default() };
        if p.eat_ws() {
            if let Some(t68) = p.token68() {
                c.token68 = Some(t68);
            } else {
                p.params(&mut c.params);
            }
        }
        out.push(c);
        if !p.at_separator() {
            break;
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat_ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    fn skip_commas_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// True at end of input or at a comma (after optional whitespace).
    fn at_separator(&mut self) -> bool {
        self.eat_ws();
        matches!(self.peek(), None | Some(b','))
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A token68 is a run of token68 characters with optional `=` padding, as long as it
    /// is not the name of a `name=value` parameter.
    fn token68(&mut self) -> Option<String> {
        if self.next_is_param(self.i) {
            return None;
        }
        let start = self.i;
        let mut j = start;
        while self.s.get(j).copied().is_some_and(is_token68_char) {
            j += 1;
        }
        if j == start {
            return None;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        self.i = j;
        Some(String::from_utf8_lossy(&self.s[start..j]).into_owned())
    }

    /// Whether a `name = value` parameter starts at `at`: a token, `=`, then a value (so
    /// token68 padding such as `abc==` or `abc=` is not mistaken for one).
    fn next_is_param(&self, at: usize) -> bool {
        let skip_ws = |mut j: usize| {
            while matches!(self.s.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            j
        };
        let mut j = at;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == at {
            return false;
        }
        j = skip_ws(j);
        if self.s.get(j) != Some(&b'=') {
            return false;
        }
        j = skip_ws(j + 1);
        !matches!(self.s.get(j), None | Some(b'=' | b','))
    }

    fn params(&mut self, out: &mut Vec<(String, String)>) {
        loop {
            let save = self.i;
            self.skip_commas_ws();
            if !self.next_is_param(self.i) {
                self.i = save;
                return;
            }
            let Some(name) = self.token() else { return };
            self.eat_ws();
            self.i += 1; // the '='
            self.eat_ws();
            let value = if self.peek() == Some(b'"') { self.quoted() } else { self.token() };
            let Some(value) = value else { return };
            out.push((name.to_ascii_lowercase(), value));
            if !self.at_separator() {
                return;
            }
        }
    }

    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&v).into_owned()),
                b'\\' => {
                    v.push(self.peek()?);
                    self.i += 1;
                }
                _ => v.push(b),
            }
        }
        None // unterminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Challenge> {
        parse(s)
    }

    #[test]
    fn single_bearer_with_params() {
        let c = &p(r#"Bearer resource_metadata="https://a.example/.well-known/oauth-protected-resource", scope="files:read""#)[0];
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("resource_metadata"), Some("https://a.example/.well-known/oauth-protected-resource"));
        assert_eq!(c.param("SCOPE"), Some("files:read"));
    }

    #[test]
    fn quoted_escapes_and_commas_inside_quotes() {
        let c = &p(r#"Bearer error_description="a \"quoted\", comma\\", error=invalid_token"#)[0];
        assert_eq!(c.param("error_description"), Some(r#"a "quoted", comma\"#));
        assert_eq!(c.param("error"), Some("invalid_token"));
    }

    #[test]
    fn several_challenges() {
        let cs = p(r#"Basic realm="x", Bearer scope="a b", error="insufficient_scope", DPoP algs="ES256""#);
        let schemes: Vec<_> = cs.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "DPoP"]);
        assert_eq!(cs[1].param("scope"), Some("a b"));
        assert_eq!(cs[1].param("error"), Some("insufficient_scope"));
        assert_eq!(cs[2].param("algs"), Some("ES256"));
    }

    #[test]
    fn token68_and_bare_schemes() {
        let cs = p("Negotiate abc+/==, Bearer, Basic realm=x");
        assert_eq!(cs[0].token68.as_deref(), Some("abc+/=="));
        assert_eq!(cs[1].scheme, "Bearer");
        assert!(cs[1].params.is_empty());
        assert_eq!(cs[2].param("realm"), Some("x"));
    }

    #[test]
    fn whitespace_around_equals_and_empty_list_items() {
        let c = &p("Bearer  ,, scope = \"x\" ,,resource_metadata=\"u\"")[0];
        assert_eq!(c.param("scope"), Some("x"));
        assert_eq!(c.param("resource_metadata"), Some("u"));
    }

    #[test]
    fn bearer_found_among_headers() {
        let b = bearer_challenge(["Basic realm=x", r#"bearer scope="tools.read""#]).unwrap();
        assert_eq!(b.scopes(), vec!["tools.read"]);
        assert!(bearer_challenge(["Basic realm=x"]).is_none());
    }

    #[test]
    fn malformed_input_never_panics() {
        for s in ["", ",", "Bearer scope=\"unterminated", "Bearer =x", "\"", "Bearer scope=", "Bearer a=b=c"] {
            let _ = parse(s);
        }
        assert_eq!(p(r#"Bearer scope="unterminated"#)[0].scheme, "Bearer");
    }
}
