//! Signing in with a code (RFC 8628, the device authorization grant): for a machine with
//! no browser the user can reach, such as an SSH session or a headless box.
//!
//! 1. Ask the device authorization endpoint for a code, with the client, the selected
//!    scopes and the RFC 8707 `resource` (§3.1).
//! 2. Show the user the `user_code` and the `verification_uri` (or the
//!    `verification_uri_complete` that carries the code) to open on any device (§3.3).
//! 3. Poll the token endpoint every `interval` seconds (5 when unset): `authorization_pending`
//!    keeps the pace, `slow_down` adds 5 s for good (§3.5); `access_denied` and
//!    `expired_token` end the sign-in. The token request carries `resource` too.
//! 4. The token response is checked as a browser sign-in's is ([`Issued::from_response`]).
//!
//! The polling loop is the `oauth2` crate's; this module bounds it by the user's timeout
//! and turns its errors into what the user should do next.

use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{DeviceAuthorizationUrl, DeviceCodeErrorResponseType, RequestTokenError, Scope, StandardDeviceAuthorizationResponse};
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;

use super::login::callback::printable;
use super::login::TokenError;
use crate::net::HttpClient;
use crate::oauth::client::{Credentials, Endpoints};
use crate::oauth::discovery::Discovery;
use crate::oauth::quirks::Quirks;
use crate::oauth::tokens::Issued;
use crate::secret::Secret;

/// The shortest pause between two polls, whatever `interval` the AS gives.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What the user needs to finish the sign-in elsewhere. The codes are secrets: they are
/// shown to the user and never logged.
#[derive(Debug, Clone)]
pub struct UserPrompt {
    pub user_code: Secret,
    /// Where to enter the code.
    pub verification_uri: Url,
    /// The same page with the code filled in, when the AS offers one.
    pub verification_uri_complete: Option<Secret>,
    /// How long the code is valid.
    pub expires_in: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{issuer} does not offer sign-in with a code (its metadata has no device_authorization_endpoint); use --no-browser to sign in by pasting the address the browser ends on")]
    Unsupported { issuer: String },
    /// The AS does not know this client (`invalid_client`).
    #[error("the authorization server does not know this client ({0})")]
    UnknownClient(String),
    /// The client is known but may not use this grant (`unauthorized_client`).
    #[error("the authorization server does not let this client sign in with a code ({0}); use --no-browser instead")]
    NotAllowed(String),
    #[error("the authorization server refused to start a sign-in with a code: {0}")]
    Start(String),
    #[error("the sign-in was declined at the authorization server; nothing was stored")]
    Denied,
    #[error("the code expired before the sign-in was completed; run the command again for a new code")]
    Expired,
    #[error("the sign-in was not completed within {0} s; run the command again to retry")]
    TimedOut(u64),
    #[error("the authorization server answered with an unusable verification address: {0}")]
    BadVerificationUri(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Run steps 1–4 for `discovery` with `credentials`, requesting `scopes`; give up after
/// `timeout` or when the code expires, whichever is first.
pub async fn sign_in(
    http: &HttpClient,
    discovery: &Discovery,
    credentials: &Credentials,
    quirks: &Quirks,
    scopes: &[String],
    timeout: Duration,
    progress: &(dyn super::login::Progress + Send + Sync + '_),
) -> Result<Issued, DeviceError> {
    let endpoint = discovery
        .auth_server
        .device_authorization_endpoint
        .clone()
        .ok_or_else(|| DeviceError::Unsupported { issuer: discovery.issuer().to_owned() })?;
    let client = credentials.oauth_client(&Endpoints::from(&discovery.auth_server)).set_device_authorization_url(DeviceAuthorizationUrl::from_url(endpoint));
    let audience = discovery.resource.as_canonical();
    let resource = quirks.resource(&audience);
    let mut start = client.exchange_device_code().add_scopes(scopes.iter().cloned().map(Scope::new));
    if let Some(r) = resource {
        start = start.add_extra_param("resource", r.to_owned());
    }
    for (k, v) in quirks.extra_params() {
        start = start.add_extra_param(k, v);
    }
    let details: StandardDeviceAuthorizationResponse = start.request_async(http).await.map_err(start_error)?;
    progress.show_code(&prompt(&details)?);
    let limited = timeout < details.expires_in();
    let timeout = timeout.min(details.expires_in());
    let deadline = Instant::now() + timeout;
    // At least a second between polls (an `interval` of 0 would be a busy loop), and never
    // a sleep past the deadline.
    let sleep = move |interval: Duration| tokio::time::sleep(interval.max(MIN_INTERVAL).min(deadline.saturating_duration_since(Instant::now())));
    let mut poll = client.exchange_device_access_token(&details);
    if let Some(r) = resource {
        poll = poll.add_extra_param("resource", r.to_owned());
    }
    let response = poll
        .request_async(http, sleep, Some(timeout))
        .await
        .map_err(|e| match poll_error(e) {
            // The crate reports its own deadline as the code's expiry: say which it was.
            DeviceError::Expired if limited && Instant::now() >= deadline => DeviceError::TimedOut(timeout.as_secs()),
            other => other,
        })?;
    Ok(Issued::from_response(&response, None, OffsetDateTime::now_utc()).map_err(TokenError::from)?)
}

/// What the user is shown, from the AS's answer: the verification address must be a web
/// address (it is printed, and a terminal must not be fed anything else).
fn prompt(details: &StandardDeviceAuthorizationResponse) -> Result<UserPrompt, DeviceError> {
    let web = |s: &str| Url::parse(s).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    let uri = details.verification_uri().as_str();
    let verification_uri = web(uri).ok_or_else(|| DeviceError::BadVerificationUri(printable(uri)))?;
    // Kept as parsed (percent-encoded), never as sent: it is printed and drawn.
    let complete = details.verification_uri_complete().and_then(|c| web(c.secret()));
    let code = details.user_code().secret();
    if code.is_empty() || code.len() > 64 || code.chars().any(char::is_control) {
        return Err(DeviceError::Start("the user code is empty, too long or not printable".into()));
    }
    Ok(UserPrompt {
        user_code: Secret::new(code.clone()),
        verification_uri,
        verification_uri_complete: complete.map(|c| Secret::new(c.to_string())),
        expires_in: details.expires_in(),
    })
}

type StartError = RequestTokenError<crate::net::FetchError, oauth2::basic::BasicErrorResponse>;
type PollError = RequestTokenError<crate::net::FetchError, oauth2::DeviceCodeErrorResponse>;

fn start_error(e: StartError) -> DeviceError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let text = described(r.error().as_ref(), r.error_description());
            match r.error() {
                BasicErrorResponseType::InvalidClient => DeviceError::UnknownClient(text),
                BasicErrorResponseType::UnauthorizedClient => DeviceError::NotAllowed(text),
                _ => DeviceError::Start(text),
            }
        }
        RequestTokenError::Request(f) => DeviceError::Token(TokenError::Transient(f.to_string())),
        RequestTokenError::Parse(e, _) => DeviceError::Start(format!("unreadable answer ({e})")),
        RequestTokenError::Other(s) => DeviceError::Start(s),
    }
}

fn poll_error(e: PollError) -> DeviceError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            DeviceCodeErrorResponseType::AccessDenied => DeviceError::Denied,
            DeviceCodeErrorResponseType::ExpiredToken => DeviceError::Expired,
            DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant) => {
                DeviceError::Token(TokenError::InvalidGrant(described("invalid_grant", r.error_description())))
            }
            DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidClient) => DeviceError::UnknownClient(described("invalid_client", r.error_description())),
            DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::UnauthorizedClient) => {
                DeviceError::NotAllowed(described("unauthorized_client", r.error_description()))
            }
            other => DeviceError::Token(TokenError::Refused(described(other.as_ref(), r.error_description()))),
        },
        RequestTokenError::Request(f) => DeviceError::Token(TokenError::Transient(f.to_string())),
        RequestTokenError::Parse(e, _) => DeviceError::Token(TokenError::Refused(format!("unreadable token response ({e})"))),
        RequestTokenError::Other(s) => DeviceError::Token(TokenError::Transient(s)),
    }
}

fn described(error: &str, description: Option<&String>) -> String {
    match description {
        Some(d) => format!("{}: {}", printable(error), printable(d)),
        None => printable(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(json: serde_json::Value) -> StandardDeviceAuthorizationResponse {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_prompt_keeps_web_addresses_only_and_hides_the_codes() {
        let d = details(serde_json::json!({
            "device_code": "dc-secret", "user_code": "WDJB-MJHT", "verification_uri": "https://as.example/device",
            "verification_uri_complete": "https://as.example/device?user_code=WDJB-MJHT", "expires_in": 600
        }));
        let p = prompt(&d).unwrap();
        assert_eq!(p.user_code.expose(), "WDJB-MJHT");
        assert_eq!(p.verification_uri.as_str(), "https://as.example/device");
        assert!(p.verification_uri_complete.is_some());
        assert_eq!(p.expires_in, Duration::from_secs(600));
        assert!(!format!("{p:?}").contains("WDJB"), "the user code is not printed by Debug");

        let hostile = details(serde_json::json!({
            "device_code": "d", "user_code": "A", "verification_uri": "javascript:alert(1)", "expires_in": 600
        }));
        assert!(matches!(prompt(&hostile), Err(DeviceError::BadVerificationUri(_))));
        let escaped = details(serde_json::json!({
            "device_code": "d", "user_code": "A", "verification_uri": "https://as.example/device",
            "verification_uri_complete": "https://as.example/device?c=A\u{1b}[2J", "expires_in": 600
        }));
        let complete = prompt(&escaped).unwrap().verification_uri_complete.unwrap();
        assert!(!complete.expose().contains('\u{1b}'), "the address is kept as parsed: {}", complete.expose());
        let complete_not_web = details(serde_json::json!({
            "device_code": "d", "user_code": "A", "verification_uri": "https://as.example/device",
            "verification_uri_complete": "file:///etc/passwd", "expires_in": 600
        }));
        assert!(prompt(&complete_not_web).unwrap().verification_uri_complete.is_none());
        let control = details(serde_json::json!({
            "device_code": "d", "user_code": "A\u{1b}[2J", "verification_uri": "https://as.example/device", "expires_in": 600
        }));
        assert!(matches!(prompt(&control), Err(DeviceError::Start(_))), "a code with terminal escapes is refused");
    }

    #[test]
    fn poll_errors_say_what_to_do() {
        let r = |e: DeviceCodeErrorResponseType| PollError::ServerResponse(oauth2::DeviceCodeErrorResponse::new(e, None, None));
        assert!(matches!(poll_error(r(DeviceCodeErrorResponseType::AccessDenied)), DeviceError::Denied));
        assert!(matches!(poll_error(r(DeviceCodeErrorResponseType::ExpiredToken)), DeviceError::Expired));
        assert!(matches!(
            poll_error(r(DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::UnauthorizedClient))),
            DeviceError::NotAllowed(_)
        ));
        assert!(matches!(
            poll_error(r(DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant))),
            DeviceError::Token(TokenError::InvalidGrant(_))
        ));
    }
}
