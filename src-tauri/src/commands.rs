//! The commands the window calls. Each one is a call on the broker's control API
//! (docs/CONTROL_API.md) through [`Control`]: the app has no other way to the tokens.

use std::sync::Arc;

use http::Method;
use http_body_util::BodyExt;
use mcp_broker::service::client::{json_request, ClientError, Control};
use serde_json::{json, Value};
use tauri::{AppHandle, Emitter, Runtime, State};

use crate::service::Supervisor;

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

    /// One JSON call on the control API; errors become the one line the window shows.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.control().call(method, path, body).await.map_err(|e| message(&e))
    }

    /// Sign in (or add and sign in) a server; `on_event` sees the service's progress
    /// events (`open_url`, `browser_failed`). Returns the signed-in server.
    pub async fn login(&self, body: Value, on_event: impl Fn(&Value)) -> Result<Value, String> {
        let resp = self.control().send(json_request(Method::POST, "/v1/login", Some(body))).await.map_err(|e| message(&e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(v["error"].as_str().map(str::to_owned).unwrap_or_else(|| format!("sign-in failed (HTTP {status})")));
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the mcp-broker service went away during the sign-in: {e}"))?;
            if let Some(chunk) = frame.data_ref() {
                buf.extend_from_slice(chunk);
            }
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
                match event["event"].as_str() {
                    Some("done") => return Ok(event["server"].clone()),
                    Some("error") => return Err(event["message"].as_str().unwrap_or("sign-in failed").to_owned()),
                    _ => on_event(&event),
                }
            }
        }
        Err("the mcp-broker service stopped during the sign-in".into())
    }
}

fn message(e: &ClientError) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

/// A path segment, percent-encoded (names are restricted by the service, but ids and host
/// names come from elsewhere).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

type Api_<'a> = State<'a, Api>;

/// The app itself: who runs the service, its version and HTTP endpoint.
#[tauri::command]
pub async fn app_info(api: Api_<'_>) -> Result<Value, String> {
    let ping = api.call(Method::GET, "/v1/ping", None).await?;
    Ok(json!({
        "mode": api.supervisor().mode(),
        "app_version": env!("CARGO_PKG_VERSION"),
        "service_version": ping["version"],
        "service_pid": ping["pid"],
        "endpoint": ping["endpoint"],
    }))
}

/// Every server, its state, account, scopes and expiry.
#[tauri::command]
pub async fn status(api: Api_<'_>) -> Result<Value, String> {
    api.call(Method::GET, "/v1/status", None).await
}

/// Add a server by URL (or sign in to a known one again) and sign in: the browser opens;
/// `login-progress` events carry the URL to show in case it does not.
#[tauri::command(rename_all = "snake_case")]
pub async fn login<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, url: String, name: Option<String>, scopes: Option<Vec<String>>) -> Result<Value, String> {
    let url = url.trim().to_owned();
    if url.is_empty() {
        return Err("enter the MCP server's URL".into());
    }
    let parsed = url::Url::parse(&url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("the MCP server's URL must start with https:// (or http:// for a local server)".into());
    }
    let mut body = json!({ "url": url });
    if let Some(n) = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        body["name"] = json!(n);
    }
    if let Some(s) = scopes.filter(|s| !s.is_empty()) {
        body["scopes"] = json!(s);
    }
    let server = api
        .login(body, |event| {
            let _ = app.emit("login-progress", json!({ "url": url, "event": event }));
        })
        .await?;
    let _ = app.emit("changed", "servers");
    Ok(server)
}

/// Refresh a server's access token now.
#[tauri::command]
pub async fn refresh(api: Api_<'_>, name: String) -> Result<Value, String> {
    api.call(Method::POST, &format!("/v1/servers/{}/refresh", seg(&name)), None).await
}

/// Sign out: revoke the tokens at the authorization server (RFC 7009) and forget them.
/// `local` forgets them even when the server cannot be reached to revoke.
#[tauri::command]
pub async fn logout<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, name: String, local: Option<bool>) -> Result<Value, String> {
    let v = api.call(Method::POST, &format!("/v1/servers/{}/logout", seg(&name)), Some(json!({ "local": local.unwrap_or(false) }))).await?;
    let _ = app.emit("changed", "servers");
    Ok(v)
}

/// Sign out (revoking) and forget the server.
#[tauri::command]
pub async fn remove_server<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, name: String) -> Result<Value, String> {
    let v = api.call(Method::DELETE, &format!("/v1/servers/{}", seg(&name)), None).await?;
    let _ = app.emit("changed", "servers");
    Ok(v)
}

/// The hosts with HTTP keys, and which servers each host used and when.
#[tauri::command]
pub async fn hosts(api: Api_<'_>) -> Result<Value, String> {
    api.call(Method::GET, "/v1/hosts", None).await
}

/// Create an HTTP key for a host; the answer holds the key, shown this once. With
/// `any_user`, programs of other users may present it too.
#[tauri::command]
pub async fn add_host(api: Api_<'_>, name: String, any_user: Option<bool>) -> Result<Value, String> {
    let name = name.trim().to_owned();
    if !mcp_broker::vault::valid_name(&name) {
        return Err("a host name is letters, digits, '.', '-' and '_' (at most 64, not starting with '.' or '-')".into());
    }
    api.call(Method::POST, "/v1/hosts", Some(json!({ "name": name, "any_user": any_user.unwrap_or(false) }))).await
}

/// Delete a host's HTTP key.
#[tauri::command]
pub async fn remove_host(api: Api_<'_>, name: String) -> Result<Value, String> {
    api.call(Method::DELETE, &format!("/v1/hosts/{}", seg(&name)), None).await
}

/// Pending first-use approvals and the decisions made. Polling this tells the service a UI
/// is there to ask.
#[tauri::command]
pub async fn approvals(api: Api_<'_>) -> Result<Value, String> {
    api.call(Method::GET, "/v1/approvals", None).await
}

/// Answer a pending approval: `once`, `always` or `deny`.
#[tauri::command]
pub async fn decide<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, id: String, decision: String) -> Result<Value, String> {
    decide_on(&api, &id, &decision).await?;
    let _ = app.emit("changed", "approvals");
    Ok(json!({ "ok": true }))
}

pub async fn decide_on(api: &Api, id: &str, decision: &str) -> Result<Value, String> {
    if !matches!(decision, "once" | "always" | "deny") {
        return Err(format!("unknown decision {decision:?}: once, always or deny"));
    }
    api.call(Method::POST, &format!("/v1/approvals/{}", seg(id)), Some(json!({ "decision": decision }))).await
}

/// Forget a decision: the host will be asked again.
#[tauri::command]
pub async fn revoke_decision<R: Runtime>(app: AppHandle<R>, api: Api_<'_>, host: String, server: String) -> Result<Value, String> {
    let v = api.call(Method::DELETE, &format!("/v1/decisions/{}/{}", seg(&host), seg(&server)), None).await?;
    let _ = app.emit("changed", "approvals");
    Ok(v)
}

/// The tools a server listed last, each enabled or not for this host.
#[tauri::command]
pub async fn policy(api: Api_<'_>, host: String, server: String) -> Result<Value, String> {
    api.call(Method::GET, &format!("/v1/policy/{}/{}", seg(&host), seg(&server)), None).await
}

/// Set the tools disabled for this host × server.
#[tauri::command]
pub async fn set_policy(api: Api_<'_>, host: String, server: String, disabled: Vec<String>) -> Result<Value, String> {
    api.call(Method::PUT, &format!("/v1/policy/{}/{}", seg(&host), seg(&server)), Some(json!({ "disabled": disabled }))).await
}

/// The audit log, newest first, optionally for one server and/or host.
#[tauri::command]
pub async fn audit(api: Api_<'_>, server: Option<String>, host: Option<String>, limit: Option<u32>) -> Result<Value, String> {
    let limit = limit.unwrap_or(200).clamp(1, 10_000).to_string();
    let q = query(&[("server", server.as_deref()), ("host", host.as_deref()), ("limit", Some(&limit))]);
    api.call(Method::GET, &format!("/v1/audit?{q}"), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("linear"), "linear");
        assert_eq!(seg("my_host-1.x~"), "my_host-1.x~");
        assert_eq!(seg("../etc"), "..%2Fetc");
        assert_eq!(seg("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(seg("é"), "%C3%A9");
    }

    #[test]
    fn audit_queries_drop_empty_filters() {
        assert_eq!(query(&[("server", Some("linear")), ("host", None), ("limit", Some("5"))]), "server=linear&limit=5");
        assert_eq!(query(&[("host", Some("cursor & co")), ("server", Some(""))]), "host=cursor+%26+co");
    }
}
