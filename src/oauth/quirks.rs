//! How a server's authorization server departs from the textbook, and what the broker does
//! about it: per-server settings given to `login` once, stored with the server and used for
//! every sign-in and refresh after (docs/COMPATIBILITY.md lists the providers).
//!
//! Each setting is off by default, since each gives up a little of what the spec asks for;
//! [`hint`] names the one that fits when a sign-in fails in a way it explains.

use serde::{Deserialize, Serialize};

/// The settings of one server (`login` flags of the same names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quirks {
    /// Extra parameters on the authorization request and the code exchange
    /// (`--authorize-param K=V`): Auth0's `audience`, Google's `access_type=offline`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorize_params: Vec<AuthorizeParam>,
    /// Leave out the RFC 8707 `resource` parameter (`--no-resource-param`): Entra ID
    /// refuses it (AADSTS9010010). Tokens are then bound only by what the AS decides.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_resource_param: bool,
    /// Listen for the redirect on this loopback port (`--callback-port N`), for ASes that
    /// match a registered redirect URI exactly, port included (Slack, Atlassian, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
    /// Use PKCE S256 with an AS whose metadata does not say whether it supports it
    /// (`--assume-s256`): Entra ID and Cognito publish no `code_challenge_methods_supported`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assume_s256: bool,
    /// Ask the AS to let the user choose the account (`prompt=select_account`, where it
    /// takes that value): set for a further account at a server (`login --account`), whose
    /// name (`NAME@ACCOUNT`) shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub select_account: bool,
    /// Which of the authorization servers the resource lists to use (`--auth-server
    /// ISSUER`); else the first whose metadata validates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_server: Option<String>,
    /// The redirect URI registered for the client, when it is not this machine's loopback
    /// (`--redirect-uri URL`, https): the user signs in in any browser and pastes back the
    /// address it ends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<url::Url>,
}

/// A `--redirect-uri`: https, or http to a loopback address; no fragment (RFC 6749 §3.1.2).
pub fn parse_redirect_uri(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    let loopback = u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if u.scheme() != "https" && !loopback {
        return Err(format!("{s} is neither https nor http to a loopback address"));
    }
    if u.fragment().is_some() {
        return Err(format!("{s} has a fragment, which a redirect URI may not have"));
    }
    Ok(u)
}

/// One `K=V` of `--authorize-param`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeParam {
    pub name: String,
    pub value: String,
}

/// Parameters the broker sets itself: a setting may not replace them.
const RESERVED: &[&str] = &[
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
    "resource", "code", "code_verifier", "grant_type", "client_secret", "refresh_token",
];

impl std::str::FromStr for AuthorizeParam {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
            return Err(format!("{name:?} is not a parameter name (letters, digits, '_', '-', '.')"));
        }
        if RESERVED.contains(&name) {
            return Err(format!("{name} is set by mcp-broker itself and cannot be given"));
        }
        Ok(Self { name: name.to_owned(), value: value.to_owned() })
    }
}

impl Quirks {
    /// The settings as the `login` flags that give them, for `status`.
    pub fn flags(&self) -> Vec<String> {
        let mut out: Vec<String> = self.authorize_params.iter().map(|p| format!("--authorize-param {}={}", p.name, p.value)).collect();
        if self.no_resource_param {
            out.push("--no-resource-param".into());
        }
        if let Some(port) = self.callback_port {
            out.push(format!("--callback-port {port}"));
        }
        if self.assume_s256 {
            out.push("--assume-s256".into());
        }
        if let Some(issuer) = &self.auth_server {
            out.push(format!("--auth-server {issuer}"));
        }
        if let Some(uri) = &self.redirect_uri {
            out.push(format!("--redirect-uri {uri}"));
        }
        out
    }

    /// The `resource` to send: the audience, unless the AS refuses the parameter.
    pub fn resource<'a>(&self, audience: &'a str) -> Option<&'a str> {
        (!self.no_resource_param).then_some(audience)
    }

    /// The extra parameters, as pairs for the request builders.
    pub fn extra_params(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.authorize_params.iter().map(|p| (p.name.clone(), p.value.clone()))
    }
}

/// The setting that explains a failed sign-in, from its message, if one does.
pub fn hint(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if ["aadsts9010010", "aadsts901002", "invalid_target"].iter().any(|k| m.contains(k)) {
        return Some("if the authorization server refuses the resource parameter (Entra ID does), sign in with --no-resource-param");
    }
    if m.contains("redirect_uri") || m.contains("redirect uri") {
        return Some("if the authorization server accepts only the redirect URI registered for its client, register http://127.0.0.1:PORT/callback there and sign in with --callback-port PORT");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_and_refuse_what_the_broker_sets() {
        let p: AuthorizeParam = "audience=https://api.example/".parse().unwrap();
        assert_eq!((p.name.as_str(), p.value.as_str()), ("audience", "https://api.example/"));
        assert_eq!("prompt=".parse::<AuthorizeParam>().unwrap().value, "");
        for bad in ["noequals", "=v", "a b=c", "state=x", "resource=https://evil.example", "redirect_uri=x"] {
            assert!(bad.parse::<AuthorizeParam>().is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_say_how_each_setting_was_given() {
        let q = Quirks {
            authorize_params: vec!["audience=x".parse().unwrap()],
            no_resource_param: true,
            callback_port: Some(8976),
            assume_s256: true,
            select_account: true,
            auth_server: None,
            redirect_uri: None,
        };
        assert_eq!(q.flags(), ["--authorize-param audience=x", "--no-resource-param", "--callback-port 8976", "--assume-s256"]);
        assert!(Quirks::default().flags().is_empty());
        assert_eq!(q.resource("https://mcp.example/mcp"), None);
        assert_eq!(Quirks::default().resource("https://mcp.example/mcp"), Some("https://mcp.example/mcp"));
    }

    #[test]
    fn failures_name_the_setting_that_fits() {
        assert!(hint("the authorization server refused the sign-in: invalid_target (AADSTS9010010: The resource parameter …)").unwrap().contains("--no-resource-param"));
        assert!(hint("invalid_request: redirect_uri does not match").unwrap().contains("--callback-port"));
        assert_eq!(hint("access_denied"), None);
    }

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        assert!(parse_redirect_uri("https://app.example/oauth/callback").is_ok());
        assert!(parse_redirect_uri("http://127.0.0.1:8976/callback").is_ok());
        for bad in ["http://app.example/cb", "javascript:alert(1)", "https://app.example/cb#x", "not a url"] {
            assert!(parse_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_not_written() {
        assert_eq!(serde_json::to_string(&Quirks::default()).unwrap(), "{}");
    }
}
