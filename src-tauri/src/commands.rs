//! The commands the window calls. Each one is a call on the broker's control API
//! (docs/CONTROL_API.md) through the typed [`Control`] client, answered with the API's own
//! types: the app has no other way to the tokens. The "Detected apps" commands are the
//! exception: they read and write the user's host config files, which hold no token, with
//! the library directly, like `mcp-broker hosts` ([`crate::apps`]).

use std::sync::Arc;

use mcp_broker::consent::Decision;
use mcp_broker::hosts::adopt::Report;
use mcp_broker::service::api;
use mcp_broker::service::client::{ClientError, Control};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime, State};

use crate::apps::{self, Apps};
use crate::service::{Mode, Supervisor};

/// What the commands share: the service the app talks to.
#[derive(Clone)]
pub struct Api {
    supervisor: Arc<Supervisor>,
}

impl Api {
    pub fn new(supervisor: Arc<Supervisor>) -> Self {
        Self { supervisor }
    }

    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    pub fn control(&self) -> &Control {
        self.supervisor.control()
    }
}

/// A failed call as the one line the window shows.
pub fn ui(e: ClientError) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

/// The payload of a `login-progress` event: which sign-in, and what happened.
#[derive(Serialize, Clone)]
pub struct LoginProgress<'a> {
    pub url: &'a str,
    pub event: &'a api::LoginEvent,
}

type Api_<'a> = State<'a, Api>;

/// Who runs the service, and its version and HTTP endpoint.
#[derive(Serialize)]
pub struct AppInfo {
    pub mode: Mode,
    pub app_version: &'static str,
    pub service_version: String,
    pub service_pid: u32,
    pub endpoint: String,
}

/// The app itself: who runs the service, its version and HTTP endpoint.
#[tauri::command]
pub async fn app_info(api: Api_<'_>) -> Result<AppInfo, String> {
    let ping = api.control().ping().await.map_err(ui)?;
    Ok(AppInfo {
        mode: api.supervisor().mode(),
        app_version: env!("CARGO_PKG_VERSION"),
        service_version: ping.version,
        service_pid: ping.pid,
        endpoint: ping.endpoint,
    })
}

/// Every server, its state, account, scopes and expiry, and the service's problems.
#[tauri::command]
pub async fn status(api: Api_<'_>) -> Result<api::Status, String> {
    api.control().status().await.map_err(ui)
}

/// Open the address of the sign-in of `server` in progress (one a host's request started):
/// http(s) only, never through a shell; the redirect back to the service's loopback
/// listener completes it.
#[tauri::command]
pub async fn open_sign_in(api: Api_<'_>, server: String) -> Result<(), String> {
    open_sign_in_of(api.control(), &server).await
}

pub async fn open_sign_in_of(control: &Control, server: &str) -> Result<(), String> {
    let status = control.status().await.map_err(ui)?;
    let url = status.signins.into_iter().find(|s| s.server == server).and_then(|s| s.url);
    let url = url.ok_or_else(|| format!("the sign-in to {server} has already ended"))?;
    // The address carries the sign-in's state: the error names the failure, not the address.
    mcp_broker::oauth::login::browser::open(&url).map_err(|e| format!("{e} (`mcp-broker status` shows the address)"))
}

/// Add a server by URL (or sign in to a known one again) and sign in: the browser opens;
/// `login-progress` events carry the URL to show in case it does not.
#[tauri::command(rename_all = "snake_case")]
pub async fn login<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, url: String, name: Option<String>, scopes: Option<Vec<String>>) -> Result<api::Server, String> {
    let url = url.trim().to_owned();
    if url.is_empty() {
        return Err("enter the MCP server's URL".into());
    }
    let parsed = url::Url::parse(&url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("the MCP server's URL must start with https:// (or http:// for a local server)".into());
    }
    let req = api::Login {
        url: url.clone(),
        name: name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        scopes: scopes.unwrap_or_default(),
        ..api::Login::default()
    };
    let server = api
        .control()
        .login(&req, |event| {
            let _ = app.emit("login-progress", LoginProgress { url: &url, event });
        })
        .await
        .map_err(ui)?;
    let _ = app.emit("changed", "servers");
    Ok(server)
}

/// Refresh a server's access token now.
#[tauri::command]
pub async fn refresh(api: Api_<'_>, name: String) -> Result<api::Refreshed, String> {
    api.control().refresh(&name).await.map_err(ui)
}

/// Sign out: revoke the tokens at the authorization server (RFC 7009) and forget them.
/// `local` forgets them even when the server cannot be reached to revoke.
#[tauri::command]
pub async fn logout<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, name: String, local: Option<bool>) -> Result<api::LoggedOut, String> {
    let out = api.control().logout(&name, local.unwrap_or(false)).await.map_err(ui)?;
    let _ = app.emit("changed", "servers");
    Ok(out)
}

/// Sign out (revoking) and forget the server.
#[tauri::command]
pub async fn remove_server<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, name: String) -> Result<api::ServerRemoved, String> {
    let out = api.control().remove_server(&name).await.map_err(ui)?;
    let _ = app.emit("changed", "servers");
    Ok(out)
}

/// The hosts with HTTP keys, and which servers each host used and when.
#[tauri::command]
pub async fn hosts(api: Api_<'_>) -> Result<api::Hosts, String> {
    api.control().hosts().await.map_err(ui)
}

/// Create an HTTP key for a host; the answer holds the key, shown this once. With
/// `any_user`, programs of other users may present it too.
#[tauri::command]
pub async fn add_host(api: Api_<'_>, name: String, any_user: Option<bool>) -> Result<api::HostAdded, String> {
    let name = name.trim().to_owned();
    if !mcp_broker::vault::valid_name(&name) {
        return Err("a host name is letters, digits, '.', '-' and '_' (at most 64, not starting with '.' or '-')".into());
    }
    api.control().add_host(&api::NewHost { name, any_user: any_user.unwrap_or(false) }).await.map_err(ui)
}

/// Delete a host's HTTP key.
#[tauri::command]
pub async fn remove_host(api: Api_<'_>, name: String) -> Result<api::HostRemoved, String> {
    api.control().remove_host(&name).await.map_err(ui)
}

/// Pending first-use approvals and the decisions made. Polling this tells the service a UI
/// is there to ask.
#[tauri::command]
pub async fn approvals(api: Api_<'_>) -> Result<api::Approvals, String> {
    api.control().approvals().await.map_err(ui)
}

/// Answer a pending approval: `once`, `always` or `deny`.
#[tauri::command]
pub async fn decide<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, id: String, decision: String) -> Result<api::Ack, String> {
    let decision = parse_decision(&decision)?;
    let id = id.trim().parse::<u64>().map_err(|_| format!("no pending approval {id:?}"))?;
    let ack = decide_on(&api, id, decision).await?;
    let _ = app.emit("changed", "approvals");
    Ok(ack)
}

/// A decision as the window and the notification buttons name it.
pub fn parse_decision(decision: &str) -> Result<Decision, String> {
    match decision {
        "once" => Ok(Decision::Once),
        "always" => Ok(Decision::Always),
        "deny" => Ok(Decision::Deny),
        other => Err(format!("unknown decision {other:?}: once, always or deny")),
    }
}

pub async fn decide_on(api: &Api, id: u64, decision: Decision) -> Result<api::Ack, String> {
    api.control().decide(id, decision).await.map_err(ui)
}

/// Forget a decision: the host will be asked again.
#[tauri::command]
pub async fn revoke_decision<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, host: String, server: String) -> Result<api::Ack, String> {
    let ack = api.control().revoke_decision(&host, &server).await.map_err(ui)?;
    let _ = app.emit("changed", "approvals");
    Ok(ack)
}

/// The tools a server listed last, each enabled or not for this host.
#[tauri::command]
pub async fn policy(api: Api_<'_>, host: String, server: String) -> Result<api::Policy, String> {
    api.control().policy(&host, &server).await.map_err(ui)
}

/// Set the tools disabled for this host × server.
#[tauri::command]
pub async fn set_policy(api: Api_<'_>, host: String, server: String, disabled: Vec<String>) -> Result<api::Ack, String> {
    let req = api::SetPolicy { disabled: disabled.into_iter().collect() };
    api.control().set_policy(&host, &server, &req).await.map_err(ui)
}

/// The audit log, newest first, optionally for one server and/or host.
#[tauri::command]
pub async fn audit(api: Api_<'_>, server: Option<String>, host: Option<String>, limit: Option<u32>) -> Result<api::Calls, String> {
    let limit = limit.unwrap_or(200).clamp(1, 10_000) as usize;
    api.control().audit(&api::AuditQuery { server, host, limit: Some(limit) }).await.map_err(ui)
}

/// The AI apps with a config file here: their files and servers, whether they are
/// connected through the broker, and whether Connect would change anything.
#[tauri::command]
pub async fn detected_apps(apps: State<'_, Apps>) -> Result<apps::DetectedApps, String> {
    let apps = apps.inner().clone();
    blocking(move || apps.detected()).await
}

/// What Connect would change in an app's files (the diff), and what it leaves alone and why.
/// Nothing is written.
#[tauri::command]
pub async fn preview_connect(apps: State<'_, Apps>, host: String) -> Result<Report, String> {
    let (apps, host) = (apps.inner().clone(), apps::host_kind(&host)?);
    blocking(move || apps.preview(host)).await
}

/// Switch an app's remote servers to the broker; the answer names the backups and whether
/// the app runs now (it reads its config at start).
#[tauri::command]
pub async fn connect_app(apps: State<'_, Apps>, host: String) -> Result<Report, String> {
    let (apps, host) = (apps.inner().clone(), apps::host_kind(&host)?);
    blocking(move || apps.connect(host)).await
}

/// Put back the entries Connect changed in an app's files.
#[tauri::command]
pub async fn disconnect_app(apps: State<'_, Apps>, host: String) -> Result<Report, String> {
    let (apps, host) = (apps.inner().clone(), apps::host_kind(&host)?);
    blocking(move || apps.disconnect(host)).await
}

/// Run file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(f).await.map_err(|e| format!("the task stopped: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_the_three_words() {
        assert_eq!(parse_decision("once"), Ok(Decision::Once));
        assert_eq!(parse_decision("always"), Ok(Decision::Always));
        assert_eq!(parse_decision("deny"), Ok(Decision::Deny));
        assert!(parse_decision("sure").unwrap_err().contains("once, always or deny"));
    }

    #[test]
    fn login_progress_carries_the_services_event() {
        let event = api::LoginEvent::BrowserFailed { message: "no browser".into() };
        let v = serde_json::to_value(LoginProgress { url: "https://x/mcp", event: &event }).unwrap();
        assert_eq!(v, serde_json::json!({ "url": "https://x/mcp", "event": { "event": "browser_failed", "message": "no browser" } }));
    }
}
