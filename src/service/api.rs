//! The control API's wire types: what each route of the control socket takes and answers,
//! as serde types shared by the service ([`super::control`]) and its clients
//! ([`super::client`]: the CLI, the tray app). docs/CONTROL_API.md describes the same
//! routes for people; a test below holds the two together.
//!
//! The field names are the wire's. Optional fields are written as `null` (the service has
//! always done so) and read with a default, so that an answer of an older service without
//! them still parses. Secrets that cross the socket (a login's client secret, a new host's
//! key) are [`Secret`]s: redacted in `Debug`, their plain value on the wire only.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

pub use crate::audit::{Call, Usage};
pub use crate::consent::Approval;
use crate::consent::{Decision, DecisionRecord};
use crate::hosts::HostInfo;
use crate::oauth::quirks::Quirks;
use crate::secret::Secret;
use crate::vault::{KeyedServer, OpenServer, ServerRecord, ServerState};
pub use crate::oauth::login::Method;
pub use crate::broker::api_keys::KeyHeader;

/// Every route of the control socket as (method, path), in the router's order. `ANY` is a
/// route that takes every method (the MCP endpoint for the bridge). The router is built
/// from a table asserted equal to this one, and docs/CONTROL_API.md is checked against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/ping"),
    ("GET", "/v1/status"),
    ("POST", "/v1/login"),
    ("POST", "/v1/login/paste"),
    ("POST", "/v1/resolve"),
    ("POST", "/v1/import"),
    ("POST", "/v1/servers/{name}/refresh"),
    ("POST", "/v1/servers/{name}/logout"),
    ("DELETE", "/v1/servers/{name}"),
    ("POST", "/v1/servers"),
    ("GET", "/v1/hosts"),
    ("POST", "/v1/hosts"),
    ("DELETE", "/v1/hosts/{name}"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/{id}"),
    ("DELETE", "/v1/decisions/{host}/{server}"),
    ("GET", "/v1/policy/{host}/{server}"),
    ("PUT", "/v1/policy/{host}/{server}"),
    ("GET", "/v1/audit"),
    ("POST", "/v1/shutdown"),
    ("ANY", "/servers/{name}/mcp"),
];

/// Every failed call: a non-2xx status and this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line for the user.
    pub error: String,
}

/// `GET /v1/ping`: which service answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub version: String,
    pub pid: u32,
    /// The loopback URL of the MCP endpoint for HTTP hosts.
    pub endpoint: String,
}

/// `GET /v1/status`: every server, the endpoint, and what is wrong with the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub servers: Vec<Server>,
    pub endpoint: String,
    /// Empty from services older than the version check, which named none.
    #[serde(default)]
    pub version: String,
    /// What the service cannot do as configured (a damaged file, say), one line each for
    /// the user; empty when all is well. Services before this field send none.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Sign-ins in progress, each with what the user is to do. Older services send none.
    #[serde(default)]
    pub signins: Vec<SignIn>,
}

/// A sign-in in progress. Its address carries the sign-in's `state` and its code is a
/// secret: both go to the user only (`Debug` leaves them out).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub server: String,
    /// The host whose request started it; absent: the user did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub how: SignInHow,
    /// The address to open: the authorization URL, or where to enter `user_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("server", &self.server).field("asked_by", &self.asked_by).field("how", &self.how).finish_non_exhaustive()
    }
}

/// How a sign-in in progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInHow {
    /// Discovery or registration still runs: nothing to do yet.
    Starting,
    /// The browser here was opened at `url`.
    Browser,
    /// `url` is to be opened in a browser anywhere; the address it ends on is pasted back.
    Paste,
    /// `user_code` is to be entered at `url`.
    Device,
}

impl SignIn {
    pub fn from_underway(s: &crate::broker::underway::SignIn) -> Self {
        use crate::broker::underway::Shown;
        let (how, url, user_code) = match &s.shown {
            Shown::Nothing => (SignInHow::Starting, None, None),
            Shown::Address { method: Method::Paste, url } => (SignInHow::Paste, Some(url.clone()), None),
            Shown::Address { url, .. } => (SignInHow::Browser, Some(url.clone()), None),
            Shown::Code(p) => (SignInHow::Device, Some(p.verification_uri.clone()), Some(p.user_code.expose().to_owned())),
        };
        Self { server: s.server.clone(), asked_by: s.asked_by.clone(), started_at: s.started_at, how, url, user_code }
    }
}

impl Status {
    /// The server named `name`, if the service knows it.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// A server as every client shows it. Never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub name: String,
    pub url: String,
    /// The audience its tokens are minted for.
    pub resource: String,
    pub state: ServerState,
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub has_refresh_token: bool,
    /// When a host last used it (from the audit).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
    /// The last refresh failure that did not end the grant.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Its sign-in settings, as the `login` flags that give them.
    #[serde(default)]
    pub settings: Vec<String>,
}

impl Server {
    /// The view of a server reached with an API key: no issuer, client or token.
    pub fn from_keyed(k: &KeyedServer, last_used_at: Option<OffsetDateTime>) -> Self {
        Self::without_oauth(&k.name, &k.url, ServerState::ApiKey, last_used_at)
    }

    /// The view of a server that asks for no sign-in.
    pub fn from_open(o: &OpenServer, last_used_at: Option<OffsetDateTime>) -> Self {
        Self::without_oauth(&o.name, &o.url, ServerState::Open, last_used_at)
    }

    fn without_oauth(name: &str, url: &str, state: ServerState, last_used_at: Option<OffsetDateTime>) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            resource: url.to_owned(),
            state,
            issuer: String::new(),
            client_id: String::new(),
            account: None,
            scopes: Vec::new(),
            expires_at: None,
            has_refresh_token: false,
            last_used_at,
            last_error: None,
            settings: Vec::new(),
        }
    }

    /// The view of a stored server; `last_used_at` comes from the audit's usage.
    pub fn from_record(r: &ServerRecord, last_used_at: Option<OffsetDateTime>) -> Self {
        Self {
            name: r.name.clone(),
            url: r.url.clone(),
            resource: r.resource.clone(),
            state: r.state,
            issuer: r.issuer.clone(),
            client_id: r.client_id.clone(),
            account: r.account.clone(),
            scopes: r.scopes.clone(),
            expires_at: r.expires_at,
            has_refresh_token: r.has_refresh_token,
            last_used_at,
            last_error: r.last_error.clone(),
            settings: r.quirks.flags(),
        }
    }
}

/// The body of `POST /v1/login` and `POST /v1/resolve`: which server, and which client to
/// sign in with. The client secret travels only over the private socket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    /// The server's URL (for `resolve`, may be empty when `name` names a known server).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A client registered in advance at the authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// A Client ID Metadata Document to use as the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<Url>,
    /// Scopes to request beyond those the server asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How long to wait for the browser sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// How to sign in; absent: the browser, unless `headless` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Why the asking program sees no browser it could use (`SSH session`, `no display`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<String>,
    /// Settings for an authorization server that departs from the textbook; absent: those
    /// kept with the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quirks: Option<Quirks>,
    /// A further account at the server: the sign-in is named `NAME@ACCOUNT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// An initial access token for dynamic registration (RFC 7591 §3); used once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token: Option<Secret>,
}

/// One line of the NDJSON stream `POST /v1/login` answers with: progress, then `done` or
/// `error`, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LoginEvent {
    /// The browser is being opened at `url`; show it in case it does not open.
    OpenUrl { url: Url },
    /// The browser could not be opened.
    BrowserFailed { message: String },
    /// No browser is opened here: show `url` to open anywhere, and send the address that
    /// browser ends on to `POST /v1/login/paste`.
    PasteUrl { url: Url },
    /// A sign-in with a code (RFC 8628): show it and where to enter it.
    DeviceCode(CodePrompt),
    /// A line about how the sign-in goes (why it is not the browser).
    Note { message: String },
    /// Signed in: the last line.
    Done { server: Server },
    /// The sign-in failed: the last line.
    Error { message: String },
    /// An event of a newer service that this program does not know: skipped.
    #[serde(other)]
    Unknown,
}

/// The code a sign-in with a code shows, and where to enter it. The codes are shown to the
/// user only: `Debug` hides them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePrompt {
    pub user_code: String,
    pub verification_uri: Url,
    /// The verification address with the code filled in, when the AS gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// How long the code is valid.
    pub expires_in_secs: u64,
}

impl std::fmt::Debug for CodePrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodePrompt").field("verification_uri", &self.verification_uri).field("expires_in_secs", &self.expires_in_secs).finish_non_exhaustive()
    }
}

/// The body of `POST /v1/login/paste`: the address a browser elsewhere ended on.
#[derive(Clone, Serialize, Deserialize)]
pub struct Paste {
    pub url: String,
}

impl std::fmt::Debug for Paste {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Paste { .. }") // it carries an authorization code
    }
}

/// The answer of `POST /v1/login/paste`: the sign-in it belonged to took it (and has
/// redeemed the code or failed: its `POST /v1/login` stream says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pasted {
    pub accepted: bool,
}

/// `POST /v1/resolve`: the name the server given by URL has (or will have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub name: String,
}

/// The body of `POST /v1/import`: a grant another tool obtained (mcp-remote's client and
/// tokens), read from that tool's files by the CLI and sent over the private socket, where
/// the service checks, stores and proves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Import {
    /// The server's URL.
    pub url: String,
    /// The name to give it (default: as a sign-in would name it).
    #[serde(default)]
    pub name: Option<String>,
    pub client: ImportClient,
    pub tokens: ImportTokens,
}

/// The client registration of an [`Import`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportClient {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// RFC 7591, as the tool recorded it.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// The issuer the tool says the client was registered at.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// The tokens of an [`Import`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportTokens {
    pub access_token: Secret,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The issuer the tool says the tokens came from.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// `POST /v1/import`: the server, signed in with the imported grant (proved to work).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    pub server: Server,
}

/// The body of `POST /v1/servers`: a server that takes an API key, and the headers that
/// carry it (their values are secrets, sent over the private socket only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddServer {
    pub name: String,
    pub url: String,
    pub headers: Vec<KeyHeader>,
}

/// `POST /v1/servers`: the server as status shows it (state `api_key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub server: Server,
}

/// `POST /v1/servers/{name}/refresh`: the server with its new token's expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refreshed {
    pub server: Server,
}

/// The body of `POST /v1/servers/{name}/logout` (optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logout {
    /// Forget the tokens even when the authorization server cannot be reached to revoke them.
    #[serde(default)]
    pub local: bool,
}

/// `POST /v1/servers/{name}/logout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOut {
    /// Whether the authorization server confirmed revoking the tokens (RFC 7009).
    pub revoked: bool,
}

/// `DELETE /v1/servers/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRemoved {
    pub removed: String,
    pub revoked: bool,
}

/// `GET /v1/hosts`: the hosts with HTTP keys, and which host used which server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hosts {
    pub hosts: Vec<HostInfo>,
    pub usage: Vec<Usage>,
}

/// The body of `POST /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHost {
    pub name: String,
    /// Let other users' programs present the key too.
    #[serde(default)]
    pub any_user: bool,
}

/// `POST /v1/hosts`: the new key, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostAdded {
    pub host: String,
    pub key: Secret,
    pub endpoint: String,
}

/// `DELETE /v1/hosts/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRemoved {
    pub removed: String,
}

/// `GET /v1/approvals`: first-use approvals waiting for the user, and the decisions kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approvals {
    pub pending: Vec<Approval>,
    pub decisions: Vec<DecisionRecord>,
    /// Always true: asking is what marks a UI as attached.
    pub ui_attached: bool,
}

/// The body of `POST /v1/approvals/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decide {
    pub decision: Decision,
}

/// The answer of the calls that have nothing to tell but success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Always true.
    pub ok: bool,
}

impl Ack {
    pub const OK: Self = Self { ok: true };
}

/// `GET /v1/policy/{host}/{server}`: the tools the server listed last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub tools: Vec<Tool>,
}

/// A tool and whether this host may call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub enabled: bool,
}

/// The body of `PUT /v1/policy/{host}/{server}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPolicy {
    /// The tools this host may not call (all others it may).
    pub disabled: BTreeSet<String>,
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only calls to this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Only calls of this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How many calls (default 50, at most 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// The query string (no `?`); empty filters are left out.
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("server", self.server.as_deref()), ("host", self.host.as_deref())] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                q.append_pair(key, v);
            }
        }
        if let Some(limit) = self.limit {
            q.append_pair("limit", &limit.to_string());
        }
        q.finish()
    }
}

/// `GET /v1/audit`: the latest calls, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calls {
    pub calls: Vec<Call>,
}

/// `POST /v1/shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    /// Always true.
    pub stopping: bool,
}

#[cfg(test)]
mod tests;
