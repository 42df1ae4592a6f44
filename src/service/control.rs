//! The control API, served on the private Unix socket: JSON in, JSON out.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/status` | servers, their state, and the HTTP endpoint |
//! | `POST /v1/login` | sign in; streams NDJSON events (`open_url`, then `done` or `error`) |
//! | `POST /v1/resolve` | name a server given by URL (for `connect URL`) without signing in |
//! | `POST /v1/servers/{name}/refresh` · `/logout` | refresh now · revoke and forget |
//! | `GET/POST /v1/hosts`, `DELETE /v1/hosts/{name}` | HTTP host keys |
//! | `GET /v1/audit` | the latest calls (`?server=&host=&limit=`) |
//! | `POST /v1/shutdown` | stop the service |
//! | `/servers/{name}/mcp` | the MCP endpoint for the stdio bridge (host named by `x-mcp-broker-host`) |
//!
//! The socket's file mode is the authentication: only this user can connect.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use url::Url;

use super::{client, Service};
use crate::broker::{Error as BrokerError, LoginRequest};
use crate::consent::Decision;
use crate::oauth::login::{browser::BrowserError, Progress};
use crate::oauth::registration::ClientChoice;
use crate::secret::Secret;
use crate::vault::ServerRecord;

/// The header naming the host behind a bridge.
pub const HOST_HEADER: &str = "x-mcp-broker-host";

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/ping", get(ping))
        .route("/v1/status", get(status))
        .route("/v1/login", post(login))
        .route("/v1/resolve", post(resolve))
        .route("/v1/servers/{name}/refresh", post(refresh))
        .route("/v1/servers/{name}/logout", post(logout))
        .route("/v1/hosts", get(hosts_list).post(hosts_add))
        .route("/v1/hosts/{name}", delete(hosts_remove))
        .route("/v1/servers/{name}", delete(remove_server))
        .route("/v1/approvals", get(approvals))
        .route("/v1/approvals/{id}", post(decide))
        .route("/v1/decisions/{host}/{server}", delete(revoke_decision))
        .route("/v1/policy/{host}/{server}", get(policy_get).put(policy_put))
        .route("/v1/audit", get(audit))
        .route("/v1/shutdown", post(shutdown))
        .route("/servers/{name}/mcp", any(mcp))
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

/// An API error: a status and one line for the user.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        let e: anyhow::Error = e.into();
        let status = match e.downcast_ref::<BrokerError>() {
            Some(BrokerError::UnknownServer(_)) => StatusCode::NOT_FOUND,
            Some(BrokerError::BadName(_) | BrokerError::NameTaken { .. } | BrokerError::NotSignedIn(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

async fn ping(State(s): S) -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id(), "endpoint": s.endpoint() }))
}

async fn status(State(s): S) -> Result<Json<Value>, ApiError> {
    let usage = s.audit.usage().unwrap_or_default();
    let servers: Vec<Value> = s
        .broker
        .servers()?
        .iter()
        .map(|r| {
            let last_used = usage.iter().filter(|u| u.server == r.name).map(|u| u.last_used).max();
            server_json(r, last_used)
        })
        .collect();
    Ok(Json(json!({ "servers": servers, "endpoint": s.endpoint(), "version": env!("CARGO_PKG_VERSION") })))
}

/// A server as every client shows it. Never a secret.
pub fn server_json(s: &ServerRecord, last_used: Option<OffsetDateTime>) -> Value {
    let rfc3339 = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    json!({
        "name": s.name, "url": s.url, "resource": s.resource, "state": s.state.as_str(), "issuer": s.issuer,
        "client_id": s.client_id, "account": s.account, "scopes": s.scopes,
        "expires_at": rfc3339(s.expires_at), "has_refresh_token": s.has_refresh_token,
        "last_used_at": rfc3339(last_used), "last_error": s.last_error,
    })
}

/// How a client asks to sign in; the client secret travels only over this private socket.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct LoginBody {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_metadata_url: Option<Url>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl LoginBody {
    fn into_request(self) -> LoginRequest {
        let client = match (self.client_id, self.client_metadata_url) {
            (Some(client_id), _) => ClientChoice::PreRegistered { client_id, secret: self.client_secret.map(Secret::new) },
            (None, Some(url)) => ClientChoice::MetadataDocument(url),
            (None, None) => ClientChoice::Automatic,
        };
        LoginRequest {
            url: self.url,
            name: self.name,
            client,
            extra_scopes: self.scopes,
            timeout: self.timeout_secs.map(std::time::Duration::from_secs),
        }
    }
}

/// Progress events of a login, sent to the waiting client as NDJSON lines.
struct Events(mpsc::UnboundedSender<Value>);

impl Progress for Events {
    fn open_url(&self, url: &Url) {
        let _ = self.0.send(json!({ "event": "open_url", "url": url.as_str() }));
    }
    fn browser_failed(&self, error: &BrowserError) {
        let _ = self.0.send(json!({ "event": "browser_failed", "message": error.to_string() }));
    }
}

async fn login(State(s): S, Json(body): Json<LoginBody>) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let events = Events(tx.clone());
        let req = body.into_request();
        let outcome = match s.broker.login(&req, &events).await {
            Ok(record) => json!({ "event": "done", "server": server_json(&record, None) }),
            Err(e) => json!({ "event": "error", "message": e.to_string() }),
        };
        let _ = tx.send(outcome);
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(ndjson(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The events as a body of JSON lines, ending when the login task is done.
fn ndjson(rx: mpsc::UnboundedReceiver<Value>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let mut line = serde_json::to_vec(&rx.recv().await?).unwrap_or_default();
        line.push(b'\n');
        Some((Ok(Bytes::from(line)), rx))
    })
}

async fn resolve(State(s): S, Json(mut body): Json<LoginBody>) -> Result<Json<Value>, ApiError> {
    let bad = |e: crate::oauth::discovery::canonical::CanonicalError| ApiError(StatusCode::BAD_REQUEST, e.to_string());
    let uri = if body.url.is_empty() { None } else { Some(crate::oauth::discovery::ResourceUri::parse(&body.url).map_err(bad)?) };
    let canonical = uri.as_ref().map(|u| u.as_canonical());
    let known = s.broker.servers()?.into_iter().find(|r| Some(&r.url) == canonical.as_ref() || Some(&r.name) == body.name.as_ref());
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
        let mut req = body.into_request();
        req.name = Some(name.clone());
        s.broker.add_pending(&name, req);
    }
    Ok(Json(json!({ "name": name })))
}

async fn refresh(State(s): S, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    s.broker.refresh(&name).await?;
    Ok(Json(json!({ "server": server_json(&s.broker.server(&name)?, None) })))
}

#[derive(Deserialize, Default)]
struct LogoutBody {
    #[serde(default)]
    local: bool,
}

async fn logout(State(s): S, Path(name): Path<String>, body: Option<Json<LogoutBody>>) -> Result<Json<Value>, ApiError> {
    let local = body.map(|b| b.0.local).unwrap_or(false);
    let report = s.broker.logout(&name, local).await?;
    Ok(Json(json!({ "revoked": report.revoked })))
}

async fn hosts_list(State(s): S) -> Result<Json<Value>, ApiError> {
    let usage = s.audit.usage().unwrap_or_default();
    Ok(Json(json!({ "hosts": s.hosts.list()?, "usage": usage })))
}

#[derive(Deserialize)]
struct HostBody {
    name: String,
    /// Let other users' programs present the key too.
    #[serde(default)]
    any_user: bool,
}

async fn hosts_add(State(s): S, Json(body): Json<HostBody>) -> Result<Json<Value>, ApiError> {
    let key = s.hosts.add(&body.name, body.any_user).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(json!({ "host": body.name, "key": key.expose(), "endpoint": s.endpoint() })))
}

async fn hosts_remove(State(s): S, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    s.hosts.remove(&name).map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(json!({ "removed": name })))
}

async fn remove_server(State(s): S, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let report = s.broker.remove(&name).await?;
    Ok(Json(json!({ "removed": name, "revoked": report.revoked })))
}

async fn approvals(State(s): S) -> Json<Value> {
    let (pending, decisions) = s.consent.approvals();
    Json(json!({ "pending": pending, "decisions": decisions, "ui_attached": true }))
}

#[derive(Deserialize)]
struct DecideBody {
    decision: Decision,
}

async fn decide(State(s): S, Path(id): Path<u64>, Json(body): Json<DecideBody>) -> Result<Json<Value>, ApiError> {
    if !s.consent.decide(id, body.decision) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no pending approval {id} (answered already, or timed out)")));
    }
    Ok(Json(json!({ "ok": true })))
}

async fn revoke_decision(State(s): S, Path((host, server)): Path<(String, String)>) -> Json<Value> {
    s.consent.revoke(&host, &server);
    Json(json!({ "ok": true }))
}

async fn policy_get(State(s): S, Path((host, server)): Path<(String, String)>) -> Json<Value> {
    let tools: Vec<Value> = s
        .consent
        .tools(&host, &server)
        .into_iter()
        .map(|(t, enabled)| json!({ "name": t.name, "description": t.description, "enabled": enabled }))
        .collect();
    Json(json!({ "tools": tools }))
}

#[derive(Deserialize)]
struct PolicyBody {
    disabled: std::collections::BTreeSet<String>,
}

async fn policy_put(State(s): S, Path((host, server)): Path<(String, String)>, Json(body): Json<PolicyBody>) -> Json<Value> {
    s.consent.set_disabled_tools(&host, &server, body.disabled);
    Json(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct AuditQuery {
    server: Option<String>,
    host: Option<String>,
    limit: Option<usize>,
}

async fn audit(State(s): S, Query(q): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    // Calls answered a moment ago may still be queued for the writer (it batches for 50 ms).
    s.audit.flush(AUDIT_READ_FLUSH);
    let calls = s.audit.latest(q.server.as_deref(), q.host.as_deref(), q.limit.unwrap_or(50).min(10_000))?;
    Ok(Json(json!({ "calls": calls })))
}

async fn shutdown(State(s): S) -> Json<Value> {
    s.shutdown.send_replace(true);
    Json(json!({ "stopping": true }))
}

async fn mcp(State(s): S, Path(name): Path<String>, req: Request) -> Response {
    let host = req.headers().get(HOST_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("unknown").chars().take(64).collect();
    s.proxy.serve(host, name, req).await
}
