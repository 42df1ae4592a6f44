//! Signing in: authorization code + PKCE S256 through the user's browser (OAuth 2.1 §4.1,
//! RFC 8252 loopback redirect, RFC 8707 `resource`, RFC 9207 `iss`).
//!
//! 1. Record `state`, the PKCE verifier and the expected issuer.
//! 2. Open the authorization URL (with `resource` and the selected scopes).
//! 3. Wait for the loopback callback and check it ([`callback`]).
//! 4. Redeem the code at the token endpoint with the verifier and `resource`.

pub mod browser;
pub mod callback;
pub mod loopback;
pub mod scopes;

use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{CsrfToken, PkceCodeChallenge, RequestTokenError, Scope};
use time::OffsetDateTime;
use url::Url;

use crate::oauth::discovery::{AuthServerMetadata, Discovery};
use crate::oauth::quirks::Quirks;
use crate::net::HttpClient;
use crate::oauth::client::{Credentials, Endpoints};
use crate::oauth::registration::RegistrationError;
use crate::oauth::tokens::{Issued, WrongTokenType};
pub use loopback::{Inbox, Loopback, PasteError};

/// How long a user has to finish signing in.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Wait(#[from] loopback::WaitError),
    #[error(transparent)]
    Browser(#[from] browser::BrowserError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Device(#[from] crate::oauth::device::DeviceError),
}

/// How the user signs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A browser on this machine, redirected back to the loopback listener.
    #[default]
    Browser,
    /// A code entered on any device (RFC 8628): [`crate::oauth::device`].
    Device,
    /// A browser anywhere; the user pastes back the address it ended on, or the loopback
    /// callback arrives, whichever comes first.
    Paste,
}

/// A failed token request (code exchange or refresh), classified for what comes next.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is dead (`invalid_grant`): the user must sign in again.
    #[error("the authorization server rejected the grant ({0}); sign in again")]
    InvalidGrant(String),
    /// The AS does not know this client (`invalid_client`).
    #[error("the authorization server does not know this client ({0})")]
    InvalidClient(String),
    #[error("the token endpoint refused the request: {0}")]
    Refused(String),
    /// Network trouble or a 5xx: worth retrying, nothing is lost.
    #[error("the token endpoint is unavailable: {0}")]
    Transient(String),
    #[error(transparent)]
    WrongType(#[from] WrongTokenType),
}

type OAuthError = RequestTokenError<crate::net::FetchError, oauth2::basic::BasicErrorResponse>;

impl From<OAuthError> for TokenError {
    fn from(e: OAuthError) -> Self {
        match e {
            RequestTokenError::ServerResponse(r) => {
                let text = match r.error_description() {
                    Some(d) => format!("{}: {}", r.error(), callback::printable(d)),
                    None => r.error().to_string(),
                };
                match r.error() {
                    BasicErrorResponseType::InvalidGrant => Self::InvalidGrant(text),
                    BasicErrorResponseType::InvalidClient => Self::InvalidClient(text),
                    _ => Self::Refused(text),
                }
            }
            RequestTokenError::Request(f) => Self::Transient(f.to_string()),
            RequestTokenError::Parse(e, body) if looks_like_server_error(&body) => Self::Transient(format!("unexpected answer ({e})")),
            RequestTokenError::Parse(e, _) => Self::Refused(format!("unreadable token response ({e})")),
            RequestTokenError::Other(s) => Self::Transient(s),
        }
    }
}

/// An HTML error page or empty body from a proxy in front of the AS, not an OAuth answer.
fn looks_like_server_error(body: &[u8]) -> bool {
    body.is_empty() || body.first() == Some(&b'<')
}

/// What the caller sees while the login runs.
pub trait Progress {
    /// The authorization URL is about to be opened; always shown to the user.
    fn open_url(&self, url: &Url);
    /// The browser could not be opened; the URL was shown, so the user can still go on.
    fn browser_failed(&self, error: &browser::BrowserError);
    /// No browser is opened here: show the URL to open in a browser anywhere, and ask for
    /// the address that browser ends on.
    fn paste_url(&self, url: &Url);
    /// A sign-in with a code: show the code and where to enter it.
    fn show_code(&self, prompt: &crate::oauth::device::UserPrompt);
    /// A line for the user about how the sign-in goes (why it is not the browser).
    fn note(&self, text: &str);
}

/// A progress sink that can be shared across tasks.
pub type DynProgress = dyn Progress + Send + Sync;

/// The `prompt` of the authorization request: `select_account` for a further account where
/// the AS takes it, and `consent` with `offline_access` (OpenID Connect Core §11: offline
/// access is granted only with explicit consent); none when the server's settings give their
/// own (admin consent may forbid `consent`).
fn prompt(quirks: &Quirks, scopes: &[String], auth_server: &AuthServerMetadata) -> Option<String> {
    if quirks.authorize_params.iter().any(|p| p.name == "prompt") {
        return None;
    }
    let takes = |v: &str| auth_server.prompt_values_supported.as_ref().is_some_and(|p| p.iter().any(|x| x == v));
    let mut values = Vec::new();
    if quirks.select_account && takes("select_account") {
        values.push("select_account");
    }
    if scopes.iter().any(|s| s == "offline_access") {
        values.push("consent");
    }
    (!values.is_empty()).then(|| values.join(" "))
}

/// Run steps 1–4 for `discovery` with `credentials`, requesting `scopes`. Without
/// `open_browser` the URL is only shown, for the user to open in a browser anywhere and
/// paste back the address it ends on ([`loopback::Inbox`]).
#[allow(clippy::too_many_arguments)] // the steps' inputs; a struct would only rename them
pub async fn authorize(
    http: &HttpClient,
    discovery: &Discovery,
    credentials: &Credentials,
    quirks: &Quirks,
    scopes: &[String],
    loopback: Loopback,
    timeout: Duration,
    open_browser: bool,
    progress: &(dyn Progress + Send + Sync + '_),
) -> Result<Issued, LoginError> {
    let endpoints = Endpoints::from(&discovery.auth_server);
    let client = Credentials::with_redirect(credentials.oauth_client(&endpoints), &loopback.redirect_uri()).map_err(RegistrationError::from)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let audience = discovery.resource.as_canonical();
    let resource = quirks.resource(&audience);
    let mut request = client.authorize_url(CsrfToken::new_random).add_scopes(scopes.iter().cloned().map(Scope::new)).set_pkce_challenge(challenge);
    if let Some(r) = resource {
        request = request.add_extra_param("resource", r.to_owned());
    }
    for (k, v) in quirks.extra_params() {
        request = request.add_extra_param(k, v);
    }
    if let Some(prompt) = prompt(quirks, scopes, &discovery.auth_server) {
        request = request.add_extra_param("prompt", prompt);
    }
    let (url, state) = request.url();
    let expected = callback::Expected {
        state: state.secret().clone(),
        issuer: discovery.issuer().to_owned(),
        iss_required: discovery.auth_server.authorization_response_iss_parameter_supported,
    };
    if open_browser {
        progress.open_url(&url);
        if let Err(e) = browser::open(&url) {
            if matches!(e, browser::BrowserError::Scheme(_)) {
                return Err(e.into());
            }
            progress.browser_failed(&e);
        }
    } else {
        browser::check_scheme(&url)?;
        progress.paste_url(&url);
    }
    let received = loopback.wait(expected, timeout).await?;
    let issued = async {
        let mut exchange = client.exchange_code(received.code.clone()).set_pkce_verifier(verifier);
        if let Some(r) = resource {
            exchange = exchange.add_extra_param("resource", r.to_owned());
        }
        for (k, v) in quirks.extra_params() {
            exchange = exchange.add_extra_param(k, v);
        }
        let response = exchange.request_async(http).await?;
        Ok::<_, TokenError>(Issued::from_response(&response, None, OffsetDateTime::now_utc())?)
    }
    .await;
    received.finish(issued.as_ref().map(drop).map_err(ToString::to_string)).await;
    Ok(issued?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_server(prompts: Option<&[&str]>) -> AuthServerMetadata {
        let mut m: AuthServerMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example", "authorization_endpoint": "https://as.example/a", "token_endpoint": "https://as.example/t",
        }))
        .unwrap();
        m.prompt_values_supported = prompts.map(|p| p.iter().map(|s| s.to_string()).collect());
        m
    }

    #[test]
    fn the_prompt_asks_only_for_what_the_as_takes_and_the_settings_leave_to_it() {
        let account = Quirks { select_account: true, ..Quirks::default() };
        let offline = ["read".to_owned(), "offline_access".to_owned()];
        assert_eq!(prompt(&account, &offline, &auth_server(Some(&["login", "select_account"]))).as_deref(), Some("select_account consent"));
        assert_eq!(prompt(&account, &[], &auth_server(None)), None, "select_account only where listed");
        assert_eq!(prompt(&Quirks::default(), &offline, &auth_server(None)).as_deref(), Some("consent"));
        let own = Quirks { authorize_params: vec!["prompt=select_account".parse().unwrap()], ..Quirks::default() };
        assert_eq!(prompt(&own, &offline, &auth_server(None)), None, "the settings' own prompt wins");
    }
}
