//! Checking the authorization response that arrives at the loopback callback.
//!
//! Before the code goes anywhere: `state` must match (CSRF), and the RFC 9207 `iss` must
//! pass the MCP table (mix-up defence), on error responses too; on an `iss` mismatch
//! the response's `error_description` is never shown, since it comes from an impostor.

use std::collections::HashMap;

use oauth2::AuthorizationCode;

/// What the callback must match, recorded before the browser was opened.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: String,
    pub issuer: String,
    /// The AS metadata's `authorization_response_iss_parameter_supported`.
    pub iss_required: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("the sign-in response has a wrong or missing state parameter (possible forgery); sign in again")]
    State,
    /// The impostor's `iss` is kept for logs but never shown: it is attacker-chosen text.
    #[error("the sign-in response came from another issuer than {expected} (possible mix-up attack); sign in again")]
    IssMismatch { found: String, expected: String },
    #[error("the sign-in response lacks the iss parameter its authorization server promised (RFC 9207); sign in again")]
    IssMissing,
    #[error("the authorization server refused the sign-in: {0}")]
    Denied(String),
    #[error("the sign-in response carries no authorization code")]
    NoCode,
}

/// Apply the checks, in order: state, `iss` (RFC 9207 §2.4 as the MCP spec tabulates it),
/// then error or code.
pub fn check(params: &HashMap<String, String>, expected: &Expected) -> Result<AuthorizationCode, CallbackError> {
    if params.get("state").map(String::as_str) != Some(expected.state.as_str()) {
        return Err(CallbackError::State);
    }
    match params.get("iss") {
        Some(iss) if iss != &expected.issuer => {
            return Err(CallbackError::IssMismatch { found: printable(iss), expected: expected.issuer.clone() })
        }
        None if expected.iss_required => return Err(CallbackError::IssMissing),
        _ => {}
    }
    if let Some(error) = params.get("error") {
        let desc = params.get("error_description").map(|d| format!(" ({})", printable(d))).unwrap_or_default();
        return Err(CallbackError::Denied(format!("{}{desc}", printable(error))));
    }
    match params.get("code") {
        Some(code) if !code.is_empty() => Ok(AuthorizationCode::new(code.clone())),
        _ => Err(CallbackError::NoCode),
    }
}

/// Text from the network, made safe for a one-line terminal message.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://as.example";

    fn exp(iss_required: bool) -> Expected {
        Expected { state: "s1".into(), issuer: ISSUER.into(), iss_required }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn iss_table() {
        // advertised + present + equal / advertised + absent / not advertised + present / absent
        assert!(check(&params(&[("state", "s1"), ("code", "c"), ("iss", ISSUER)]), &exp(true)).is_ok());
        assert_eq!(check(&params(&[("state", "s1"), ("code", "c")]), &exp(true)).err(), Some(CallbackError::IssMissing));
        assert!(check(&params(&[("state", "s1"), ("code", "c"), ("iss", ISSUER)]), &exp(false)).is_ok());
        assert!(matches!(check(&params(&[("state", "s1"), ("code", "c"), ("iss", "https://evil")]), &exp(false)), Err(CallbackError::IssMismatch { .. })));
        assert!(check(&params(&[("state", "s1"), ("code", "c")]), &exp(false)).is_ok());
    }

    #[test]
    fn iss_is_compared_without_normalisation() {
        for near in ["https://as.example/", "HTTPS://as.example", "https://AS.example", "https://as.example:443"] {
            let r = check(&params(&[("state", "s1"), ("code", "c"), ("iss", near)]), &exp(true));
            assert!(matches!(r, Err(CallbackError::IssMismatch { .. })), "{near}");
        }
    }

    #[test]
    fn state_checked_first_and_error_hidden_on_mismatch() {
        assert_eq!(check(&params(&[("state", "x"), ("code", "c"), ("iss", ISSUER)]), &exp(true)).err(), Some(CallbackError::State));
        assert_eq!(check(&params(&[("code", "c")]), &exp(false)).err(), Some(CallbackError::State));
        let forged = params(&[("state", "s1"), ("iss", "https://evil"), ("error", "access_denied"), ("error_description", "call 555")]);
        let e = check(&forged, &exp(true)).unwrap_err().to_string();
        assert!(!e.contains("555"), "{e}");
        let real = params(&[("state", "s1"), ("iss", ISSUER), ("error", "access_denied"), ("error_description", "user said no\n")]);
        assert_eq!(check(&real, &exp(true)).err(), Some(CallbackError::Denied("access_denied (user said no)".into())));
    }
}
