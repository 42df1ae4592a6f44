//! The control API, served on the private Unix socket: JSON in, JSON out.
//!
//! The routes, their bodies and answers are the types of [`super::api`] (its
//! [`api::ROUTES`] lists them; docs/CONTROL_API.md describes each for people, and a test
//! holds the doc to the list). Each handler here takes and returns those types and asks
//! the engine; [`table`] pairs every route with its handler.
//!
//! The socket's file mode is the authentication: only this user can connect.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use tokio::sync::mpsc;
use url::Url;

use super::{api, client, Service};
use oauth2::{AccessToken, RefreshToken};

use crate::broker::underway::{Joined, Shown};
use crate::broker::{Error as BrokerError, ImportedClient, ImportedTokens, LoginRequest};
use crate::oauth::device::UserPrompt;
use crate::oauth::login::{browser::BrowserError, Progress};
use crate::oauth::registration::ClientChoice;

/// The header naming the host behind a bridge.
pub const HOST_HEADER: &str = "x-mcp-broker-host";


/// Every route as (method, path, handler), in the order of [`api::ROUTES`] (a test holds
/// the two equal).
fn table() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Service>>)> {
    vec![
        ("GET", "/v1/ping", get(ping)),
        ("GET", "/v1/status", get(status)),
        ("POST", "/v1/login", post(login)),
        ("POST", "/v1/login/paste", post(paste)),
        ("POST", "/v1/resolve", post(resolve)),
        ("POST", "/v1/import", post(import)),
        ("POST", "/v1/servers/{name}/refresh", post(refresh)),
        ("POST", "/v1/servers/{name}/logout", post(logout)),
        ("DELETE", "/v1/servers/{name}", delete(remove_server)),
        ("POST", "/v1/servers", post(add_server)),
        ("GET", "/v1/hosts", get(hosts_list)),
        ("POST", "/v1/hosts", post(hosts_add)),
        ("DELETE", "/v1/hosts/{name}", delete(hosts_remove)),
        ("GET", "/v1/approvals", get(approvals)),
        ("POST", "/v1/approvals/{id}", post(decide)),
        ("DELETE", "/v1/decisions/{host}/{server}", delete(revoke_decision)),
        ("GET", "/v1/policy/{host}/{server}", get(policy_get)),
        ("PUT", "/v1/policy/{host}/{server}", put(policy_put)),
        ("GET", "/v1/audit", get(audit)),
        ("POST", "/v1/shutdown", post(shutdown)),
        ("ANY", "/servers/{name}/mcp", any(mcp)),
    ]
}

pub fn router(service: Arc<Service>) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| router.route(path, handler))
        .layer(axum::middleware::map_response(stamp_version))
        .with_state(service)
}

/// Every answer names the service's version, so that a client of another version (an
/// upgrade while the old service runs on) can say so.
async fn stamp_version(mut resp: Response) -> Response {
    resp.headers_mut().insert(client::VERSION_HEADER, http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    resp
}

type S = State<Arc<Service>>;

/// How long an audit read waits for the calls still queued to be written.
const AUDIT_READ_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// An API error: a status and one line for the user ([`api::ErrorBody`]).
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(api::ErrorBody { error: self.1 })).into_response()
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        let e: anyhow::Error = e.into();
        let status = match e.downcast_ref::<BrokerError>() {
            Some(BrokerError::UnknownServer(_)) => StatusCode::NOT_FOUND,
            Some(BrokerError::BadName(_) | BrokerError::NameTaken { .. } | BrokerError::NotSignedIn(_) | BrokerError::Import { .. }) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn ping(State(s): S) -> Json<api::Ping> {
    Json(api::Ping { version: VERSION.into(), pid: std::process::id(), endpoint: s.endpoint() })
}

async fn status(State(s): S) -> Result<Json<api::Status>, ApiError> {
    let usage = s.audit.usage().unwrap_or_default();
    let last_used = |name: &str| usage.iter().filter(|u| u.server == name).map(|u| u.last_used).max();
    // A damaged servers.json is among the problems; the rest of the status still answers.
    let oauth = s.broker.servers().unwrap_or_default();
    let keyed = s.broker.keyed_servers().unwrap_or_default();
    let open = s.broker.open_servers().unwrap_or_default();
    let servers = oauth
        .iter()
        .map(|r| api::Server::from_record(r, last_used(&r.name)))
        .chain(keyed.iter().map(|k| api::Server::from_keyed(k, last_used(&k.name))))
        .chain(open.iter().map(|o| api::Server::from_open(o, last_used(&o.name))))
        .collect();
    let signins = s.broker.sign_ins().iter().map(api::SignIn::from_underway).collect();
    Ok(Json(api::Status { servers, endpoint: s.endpoint(), version: VERSION.into(), problems: s.problems(), signins }))
}

/// What the engine makes of a login body: a pre-registered client when it names one, else
/// a metadata document's URL as the client id, else registration as the AS allows.
fn login_request(body: api::Login) -> LoginRequest {
    let client = match (body.client_id, body.client_metadata_url) {
        (Some(client_id), _) => ClientChoice::PreRegistered { client_id, secret: body.client_secret },
        (None, Some(url)) => ClientChoice::MetadataDocument(url),
        (None, None) => match body.registration_token {
            Some(token) => ClientChoice::RegistrationToken(token),
            None => ClientChoice::Automatic,
        },
    };
    LoginRequest {
        url: body.url,
        name: body.name,
        client,
        extra_scopes: body.scopes,
        timeout: body.timeout_secs.map(std::time::Duration::from_secs),
        method: body.method,
        headless: body.headless,
        asked_by: None,
        refused: None,
        quirks: body.quirks,
        account: body.account,
    }
}

/// Progress events of a login, sent to the waiting client as NDJSON lines.
struct Events(mpsc::UnboundedSender<api::LoginEvent>);

impl Progress for Events {
    fn open_url(&self, url: &Url) {
        let _ = self.0.send(api::LoginEvent::OpenUrl { url: url.clone() });
    }
    fn browser_failed(&self, error: &BrowserError) {
        let _ = self.0.send(api::LoginEvent::BrowserFailed { message: error.to_string() });
    }
    fn paste_url(&self, url: &Url) {
        let _ = self.0.send(api::LoginEvent::PasteUrl { url: url.clone() });
    }
    fn show_code(&self, prompt: &UserPrompt) {
        let _ = self.0.send(api::LoginEvent::DeviceCode(api::CodePrompt {
            user_code: prompt.user_code.expose().to_owned(),
            verification_uri: prompt.verification_uri.clone(),
            verification_uri_complete: prompt.verification_uri_complete.as_ref().map(|c| c.expose().to_owned()),
            expires_in_secs: prompt.expires_in.as_secs(),
        }));
    }
    fn note(&self, text: &str) {
        let _ = self.0.send(api::LoginEvent::Note { message: text.to_owned() });
    }
}

async fn login(State(s): S, Json(body): Json<api::Login>) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    // A plain `login NAME` follows a sign-in in progress; one with options of its own waits
    // for it, then signs in as asked.
    let plain = body.scopes.is_empty() && body.client_id.is_none() && body.client_metadata_url.is_none() && body.method.is_none();
    let joined = body.name.as_deref().filter(|_| plain).and_then(|name| s.broker.join_sign_in(name));
    tokio::spawn(async move {
        let events = Events(tx.clone());
        let signed_in = match joined {
            Some(joined) => join(&s, joined, &events).await,
            None => s.broker.login(&login_request(body), &events).await.map_err(|e| e.to_string()),
        };
        let outcome = match signed_in {
            Ok(record) => api::LoginEvent::Done { server: api::Server::from_record(&record, None) },
            Err(message) => api::LoginEvent::Error { message },
        };
        let _ = tx.send(outcome);
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(ndjson(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Follow a sign-in already in progress (a host's, say) instead of starting another: show
/// what it shows, then how it ends.
async fn join(s: &Service, mut joined: Joined, events: &Events) -> Result<crate::vault::ServerRecord, String> {
    let by = joined.info.asked_by.as_deref().map(|h| format!(" (started by {h})")).unwrap_or_default();
    events.note(&format!("A sign-in to {}{by} is already in progress: joining it.", joined.info.server));
    match joined.shown().await {
        Some(Shown::Address { url, .. }) => events.paste_url(&url),
        Some(Shown::Code(prompt)) => events.show_code(&prompt),
        Some(Shown::Nothing) | None => {}
    }
    let server = joined.info.server.clone();
    joined.ended().await?;
    s.broker.server(&server).map_err(|e| e.to_string())
}

/// The address a browser elsewhere ended on, for the sign-in it belongs to; answered once
/// that sign-in has redeemed the code or failed (its own stream says which).
async fn paste(State(s): S, Json(body): Json<api::Paste>) -> Result<Json<api::Pasted>, ApiError> {
    match s.broker.paste(&body.url).await {
        Ok(()) => Ok(Json(api::Pasted { accepted: true })),
        Err(e @ BrokerError::Paste(_)) => Err(ApiError(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The events as a body of JSON lines, ending when the login task is done.
fn ndjson(rx: mpsc::UnboundedReceiver<api::LoginEvent>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let mut line = serde_json::to_vec(&rx.recv().await?).unwrap_or_default();
        line.push(b'\n');
        Some((Ok(Bytes::from(line)), rx))
    })
}

async fn resolve(State(s): S, Json(mut body): Json<api::Login>) -> Result<Json<api::Resolved>, ApiError> {
    let bad = |e: crate::oauth::discovery::canonical::CanonicalError| ApiError(StatusCode::BAD_REQUEST, e.to_string());
    let uri = if body.url.is_empty() { None } else { Some(crate::oauth::discovery::ResourceUri::parse(&body.url).map_err(bad)?) };
    let canonical = uri.as_ref().map(|u| u.as_canonical());
    // By name, else by URL: its first account (a name without `@`).
    let servers = s.broker.servers()?;
    let known = servers.iter().find(|r| Some(&r.name) == body.name.as_ref()).or_else(|| servers.iter().find(|r| Some(&r.url) == canonical.as_ref() && !r.name.contains('@'))).cloned();
    let name = match (&known, &body.name, &uri) {
        (Some(r), _, _) => r.name.clone(),
        (None, Some(n), _) => n.clone(),
        (None, None, Some(u)) => u.default_name(),
        (None, None, None) => return Err(ApiError(StatusCode::BAD_REQUEST, "give a server URL or a known name".into())),
    };
    let has_client = body.client_id.is_some() || body.client_metadata_url.is_some();
    if known.is_none() || has_client {
        if let Some(r) = &known {
            body.url = r.url.clone();
        }
        let mut req = login_request(body);
        req.name = Some(name.clone());
        s.broker.add_pending(&name, req);
    }
    Ok(Json(api::Resolved { name }))
}

/// Check, store and prove a grant another tool obtained; nothing stays stored on failure.
async fn import(State(s): S, Json(body): Json<api::Import>) -> Result<Json<api::Imported>, ApiError> {
    let (client, tokens) = imported(body.client, body.tokens);
    let record = s.broker.import(body.name, &body.url, client, tokens).await?;
    Ok(Json(api::Imported { server: api::Server::from_record(&record, None) }))
}

/// The wire's import types as the engine takes them.
fn imported(c: api::ImportClient, t: api::ImportTokens) -> (ImportedClient, ImportedTokens) {
    let client = ImportedClient { client_id: c.client_id, client_secret: c.client_secret, auth_method: c.token_endpoint_auth_method, issuer: c.issuer };
    let tokens = ImportedTokens {
        access_token: AccessToken::new(t.access_token.expose().to_owned()),
        refresh_token: t.refresh_token.map(|r| RefreshToken::new(r.expose().to_owned())),
        token_type: t.token_type,
        expires_at: t.expires_at,
        scopes: t.scopes,
        issuer: t.issuer,
    };
    (client, tokens)
}

async fn refresh(State(s): S, Path(name): Path<String>) -> Result<Json<api::Refreshed>, ApiError> {
    s.broker.refresh(&name).await?;
    Ok(Json(api::Refreshed { server: api::Server::from_record(&s.broker.server(&name)?, None) }))
}

/// Add a server that takes an API key; its key goes to the keychain.
async fn add_server(State(s): S, Json(body): Json<api::AddServer>) -> Result<Json<api::Added>, ApiError> {
    let keyed = s.broker.add_api_key(&body.name, &body.url, body.headers).map_err(|e| match e {
        BrokerError::BadKey(_) | BrokerError::BadName(_) | BrokerError::NameTaken { .. } => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        other => ApiError::from(other),
    })?;
    Ok(Json(api::Added { server: api::Server::from_keyed(&keyed, None) }))
}

async fn logout(State(s): S, Path(name): Path<String>, body: Option<Json<api::Logout>>) -> Result<Json<api::LoggedOut>, ApiError> {
    // An API key has nothing to revoke: signing out deletes it. A server that asks for no
    // sign-in is forgotten (a host's next request finds it again).
    if s.broker.remove_api_key(&name)? || s.broker.remove_open(&name)? {
        return Ok(Json(api::LoggedOut { revoked: false }));
    }
    let local = body.map(|b| b.0.local).unwrap_or(false);
    let report = s.broker.logout(&name, local).await?;
    Ok(Json(api::LoggedOut { revoked: report.revoked }))
}

async fn hosts_list(State(s): S) -> Result<Json<api::Hosts>, ApiError> {
    let usage = s.audit.usage().unwrap_or_default();
    Ok(Json(api::Hosts { hosts: s.hosts.list()?, usage }))
}

async fn hosts_add(State(s): S, Json(body): Json<api::NewHost>) -> Result<Json<api::HostAdded>, ApiError> {
    let key = s.hosts.add(&body.name, body.any_user).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(api::HostAdded { host: body.name, key, endpoint: s.endpoint() }))
}

async fn hosts_remove(State(s): S, Path(name): Path<String>) -> Result<Json<api::HostRemoved>, ApiError> {
    s.hosts.remove(&name).map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(api::HostRemoved { removed: name }))
}

async fn remove_server(State(s): S, Path(name): Path<String>) -> Result<Json<api::ServerRemoved>, ApiError> {
    if s.broker.remove_api_key(&name)? || s.broker.remove_open(&name)? {
        return Ok(Json(api::ServerRemoved { removed: name, revoked: false }));
    }
    let report = s.broker.remove(&name).await?;
    Ok(Json(api::ServerRemoved { removed: name, revoked: report.revoked }))
}

async fn approvals(State(s): S) -> Json<api::Approvals> {
    let (pending, decisions) = s.consent.approvals();
    Json(api::Approvals { pending, decisions, ui_attached: true })
}

async fn decide(State(s): S, Path(id): Path<u64>, Json(body): Json<api::Decide>) -> Result<Json<api::Ack>, ApiError> {
    if !s.consent.decide(id, body.decision).map_err(not_saved)? {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no pending approval {id} (answered already, or timed out)")));
    }
    Ok(Json(api::Ack::OK))
}

async fn revoke_decision(State(s): S, Path((host, server)): Path<(String, String)>) -> Result<Json<api::Ack>, ApiError> {
    s.consent.revoke(&host, &server).map_err(not_saved)?;
    Ok(Json(api::Ack::OK))
}

/// A consent change the service could not keep: the user must fix the file first.
fn not_saved(e: crate::consent::NotSaved) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn policy_get(State(s): S, Path((host, server)): Path<(String, String)>) -> Json<api::Policy> {
    let tools = s
        .consent
        .tools(&host, &server)
        .into_iter()
        .map(|(t, enabled)| api::Tool { name: t.name, description: t.description, enabled })
        .collect();
    Json(api::Policy { tools })
}

async fn policy_put(State(s): S, Path((host, server)): Path<(String, String)>, Json(body): Json<api::SetPolicy>) -> Result<Json<api::Ack>, ApiError> {
    s.consent.set_disabled_tools(&host, &server, body.disabled).map_err(not_saved)?;
    Ok(Json(api::Ack::OK))
}

async fn audit(State(s): S, Query(q): Query<api::AuditQuery>) -> Result<Json<api::Calls>, ApiError> {
    // Calls answered a moment ago may still be queued for the writer (it batches for 50 ms).
    s.audit.flush(AUDIT_READ_FLUSH);
    let calls = s.audit.latest(q.server.as_deref(), q.host.as_deref(), q.limit.unwrap_or(50).min(10_000))?;
    Ok(Json(api::Calls { calls }))
}

async fn shutdown(State(s): S) -> Json<api::Stopping> {
    s.shutdown.send_replace(true);
    Json(api::Stopping { stopping: true })
}

async fn mcp(State(s): S, Path(name): Path<String>, req: Request) -> Response {
    let host = req.headers().get(HOST_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("unknown").chars().take(64).collect();
    s.proxy.serve(host, name, req).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_router_serves_exactly_the_api_routes() {
        let served: Vec<(&str, &str)> = super::table().into_iter().map(|(method, path, _)| (method, path)).collect();
        assert_eq!(served, super::api::ROUTES);
    }
}
