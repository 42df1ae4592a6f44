//! The stdio bridge: `mcp-broker connect NAME`, what a host launches instead of a local
//! MCP server.
//!
//! It reads newline-delimited JSON-RPC messages from stdin and POSTs each to the service's
//! MCP endpoint over the control socket; JSON answers and SSE events go to stdout, one
//! message a line; logs go to stderr only. It holds no secrets: the service attaches the
//! token. It keeps the 2025-11-25 session (`Mcp-Session-Id`, the GET stream, DELETE at the
//! end) and adds the 2026-07-28 request metadata headers ([`headers`]). Requests run
//! concurrently; `initialize` and `notifications/initialized` are sent in order. If the
//! service restarts, the next message starts it again and goes on.

mod stdio;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, RwLock};
use tokio::task::JoinSet;

use crate::service::client::{ClientError, Control, Lease};
use crate::mcp::{metadata, sse};
use crate::mcp::headers::HEADLESS_HEADER;
use crate::service::control::HOST_HEADER;

/// How long the bridge waits for answers still in flight once stdin closes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running bridge for one server and one host.
pub struct Bridge {
    control: Control,
    path: String,
    host: String,
    /// Where the host's user is, as [`HEADLESS_HEADER`] tells the service, when the
    /// bridge's environment can tell.
    headless: Option<String>,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    /// The session whose GET stream is open, if any.
    listening: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Requests share the gate; `initialize` and `notifications/initialized` hold it alone.
    order: RwLock<()>,
    out: mpsc::UnboundedSender<Vec<u8>>,
}

/// Run a bridge until stdin closes.
pub async fn run(control: Control, server: &str, host: &str) -> anyhow::Result<()> {
    let _restore = stdio::Restore::capture(); // dropped last, after the writer is done
    let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut stdout = stdio::stdout();
        while let Some(mut line) = out_rx.recv().await {
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let bridge = Arc::new(Bridge {
        control,
        path: crate::service::client::mcp_path(server),
        host: host.to_owned(),
        headless: crate::oauth::login::browser::headless_if_known(|v| std::env::var(v).ok()).map(|why| why.unwrap_or_else(|| "no".to_owned())),
        session: Mutex::new(None),
        version: Mutex::new(None),
        listening: Mutex::new(None),
        closed: AtomicBool::new(false),
        order: RwLock::new(()),
        out,
    });
    let mut lines = BufReader::new(stdio::stdin()).lines();
    let mut tasks = JoinSet::new();
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        // A host ends a stdio server by closing stdin, or by a signal: both end the same way.
        let line = tokio::select! {
            line = lines.next_line() => line?,
            () = &mut stop => None,
        };
        let Some(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let b = bridge.clone();
        tasks.spawn(async move { b.handle(line).await });
        while tasks.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    bridge.close().await;
    drop(bridge);
    // A GET stream the upstream keeps open after DELETE must not keep the bridge alive.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// SIGTERM, SIGINT or SIGHUP (never, where they cannot be watched).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()];
        let mut signals: Vec<_> = kinds.into_iter().filter_map(|k| signal(k).ok()).collect();
        if !signals.is_empty() {
            let waits = signals.iter_mut().map(|s| Box::pin(s.recv()));
            futures_util::future::select_all(waits).await;
            return;
        }
    }
    std::future::pending::<()>().await
}

impl Bridge {
    fn emit(&self, msg: Vec<u8>) {
        let _ = self.out.send(msg);
    }

    fn emit_error(&self, id: Option<&Value>, message: &str) {
        if let Some(id) = id {
            let v = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": message } });
            self.emit(v.to_string().into_bytes());
        } else {
            tracing::warn!("{message}");
        }
    }

    async fn handle(self: Arc<Self>, line: String) {
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let v = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": format!("parse error: {e}") } });
                return self.emit(v.to_string().into_bytes());
            }
        };
        let id = msg.get("id").filter(|_| msg.get("method").is_some()).cloned();
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        let exclusive = method == "initialize" || method == "notifications/initialized";
        let resp = {
            let _order = if exclusive { Ok(self.order.write().await) } else { Err(self.order.read().await) };
            self.send(Method::POST, self.request_headers(&msg), Bytes::from(line)).await
        };
        match resp {
            Ok((resp, lease)) => {
                self.answer(resp, id.as_ref(), method == "initialize").await;
                lease.release(); // the answer was read to its end
            }
            Err(e) => self.emit_error(id.as_ref(), &e.to_string()),
        }
    }

    fn request_headers(&self, msg: &Value) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned()), ("accept", "application/json, text/event-stream".to_owned())];
        let version = metadata::meta_protocol_version(msg).map(str::to_owned).or_else(|| self.version.lock().ok()?.clone());
        if let Some(v) = version {
            h.push(("mcp-protocol-version", v));
        }
        if let Some(s) = self.session.lock().ok().and_then(|s| s.clone()) {
            h.push(("mcp-session-id", s));
        }
        if let Some(m) = msg.get("method").and_then(Value::as_str) {
            h.push(("mcp-method", metadata::encode_value(m)));
        }
        if let Some(n) = metadata::mcp_name(msg) {
            h.push(("mcp-name", metadata::encode_value(n)));
        }
        h
    }

    /// Send to the service; if it went away, start it again and retry once.
    async fn send(&self, method: Method, headers: Vec<(&'static str, String)>, body: Bytes) -> Result<(hyper::Response<Incoming>, Lease), ClientError> {
        let build = || {
            let mut req = Request::builder().method(method.clone()).uri(&self.path).header("host", "mcp-broker").header(HOST_HEADER, &self.host);
            if let Some(headless) = &self.headless {
                req = req.header(HEADLESS_HEADER, headless);
            }
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            req.body(Full::new(body.clone())).map_err(|e| ClientError::Api(e.to_string()))
        };
        match self.control.send_leased(build()?).await {
            // Only a request that never reached the service is sent again: one cut off
            // mid-way may have been forwarded, and a tool call must not run twice.
            Err(ClientError::NotRunning(_)) => {
                self.control.ensure_running().await?;
                self.control.send_leased(build()?).await
            }
            other => other,
        }
    }

    async fn answer(self: &Arc<Self>, resp: hyper::Response<Incoming>, id: Option<&Value>, initialize: bool) {
        let status = resp.status();
        if initialize && status.is_success() {
            if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.to_owned());
            }
        }
        let is_sse = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"));
        match status {
            StatusCode::ACCEPTED => {
                let _ = resp.into_body().collect().await;
            }
            s if s.is_success() && is_sse => {
                let answered = self.relay_sse(resp.into_body(), initialize, id).await.1;
                if !answered {
                    self.emit_error(id, "the answer stream ended before the server answered (the connection to mcp-broker was lost)");
                }
            }
            s if s.is_success() => match resp.into_body().collect().await {
                Ok(body) => self.relay_message(&body.to_bytes(), initialize),
                Err(e) => self.emit_error(id, &format!("the answer was cut off: {e}")),
            },
            StatusCode::NOT_FOUND if self.session.lock().map(|s| s.is_some()).unwrap_or(false) => {
                let _ = resp.into_body().collect().await;
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.emit_error(id, "the server ended the MCP session (HTTP 404): re-initialize the connection");
            }
            s => {
                let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let text: String = String::from_utf8_lossy(&body).chars().filter(|c| !c.is_control()).take(300).collect();
                self.emit_error(id, &format!("the server answered HTTP {}: {text}", s.as_u16()));
            }
        }
    }

    /// Write one JSON-RPC message (or batch) as one line.
    fn relay_message(self: &Arc<Self>, data: &[u8], initialize: bool) {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            tracing::warn!("dropped a message that is not JSON ({} bytes)", data.len());
            return;
        };
        if initialize {
            self.on_initialized(&v);
        }
        let line = if data.contains(&b'\n') { v.to_string().into_bytes() } else { data.to_vec() };
        self.emit(line);
    }

    /// Relay an SSE answer; returns the last event id and whether the response to `id`
    /// (if any) came through.
    async fn relay_sse(self: &Arc<Self>, mut body: Incoming, initialize: bool, id: Option<&Value>) -> (Option<String>, bool) {
        let mut parser = sse::Parser::default();
        let mut answered = id.is_none();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(chunk) = frame.data_ref() {
                for event in parser.feed(chunk) {
                    answered |= id.is_some_and(|id| is_response_to(event.data.as_bytes(), id));
                    self.relay_message(event.data.as_bytes(), initialize);
                }
            }
        }
        (parser.last_id, answered)
    }

    /// After `initialize`: remember the negotiated version; with a session, open the
    /// 2025-11-25 GET stream for server-initiated messages.
    fn on_initialized(self: &Arc<Self>, v: &Value) {
        if let Some(version) = v.get("result").and_then(|r| r.get("protocolVersion")).and_then(Value::as_str) {
            *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(version.to_owned());
        }
        let Some(session) = self.current_session() else { return };
        tracing::debug!(%session, "initialized");
        let mut listening = self.listening.lock().unwrap_or_else(|p| p.into_inner());
        if listening.as_ref() != Some(&session) {
            *listening = Some(session);
            let b = self.clone();
            tokio::spawn(async move { b.listen().await });
        }
    }

    /// The standalone GET stream of the current session; resumed with `Last-Event-ID`
    /// when it drops, until the server says it has none (404/405), the session changes, or
    /// the bridge closes. A later session gets a listener of its own.
    async fn listen(self: Arc<Self>) {
        let session = self.current_session();
        let mut last_id: Option<String> = None;
        let mut failures = 0;
        while !self.closed.load(Ordering::SeqCst) && failures < 5 && session.is_some() && self.current_session() == session {
            let mut h = vec![("accept", "text/event-stream".to_owned())];
            h.extend(self.session_headers());
            if let Some(id) = &last_id {
                h.push(("last-event-id", id.clone()));
            }
            let answer = self.send(Method::GET, h, Bytes::new()).await;
            tracing::debug!(?session, status = ?answer.as_ref().map(|r| r.0.status()), "GET stream");
            match answer.map(|(resp, _lease)| resp) {
                Ok(resp) if resp.status() == StatusCode::OK => {
                    failures = 0;
                    if let Some(id) = self.relay_sse(resp.into_body(), false, None).await.0 {
                        last_id = Some(id);
                    }
                }
                Ok(resp) if matches!(resp.status().as_u16(), 404 | 405) => break,
                _ => failures += 1,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut listening = self.listening.lock().unwrap_or_else(|p| p.into_inner());
        if *listening == session {
            *listening = None;
        }
    }

    fn current_session(&self) -> Option<String> {
        self.session.lock().ok().and_then(|s| s.clone())
    }

    fn session_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(s) = self.session.lock().ok().and_then(|s| s.clone()) {
            h.push(("mcp-session-id", s));
        }
        if let Some(v) = self.version.lock().ok().and_then(|v| v.clone()) {
            h.push(("mcp-protocol-version", v));
        }
        h
    }

    /// End the session politely (2025-11-25 DELETE).
    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if self.session.lock().map(|s| s.is_some()).unwrap_or(false) {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.send(Method::DELETE, self.session_headers(), Bytes::new())).await;
        }
    }
}

/// Whether an SSE event's message is the response (result or error) to request `id`.
fn is_response_to(data: &[u8], id: &Value) -> bool {
    serde_json::from_slice::<Value>(data)
        .is_ok_and(|v| v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some()))
}
