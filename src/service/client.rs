//! The client side of the control socket: HTTP/1.1 over the Unix socket (hyper), starting
//! the service when none runs (the way gpg-agent is started on demand), and one typed
//! method per route of the control API ([`super::api`]) for the CLI and the tray app.
//! The paths are built here only, every name in them percent-encoded ([`segment`]).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use std::sync::{Arc, Mutex};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use super::api;
use super::instance::{self, Paths};
use crate::consent::Decision;
use crate::vault::Home;

/// The header that names the service's version on every control-socket answer.
pub const VERSION_HEADER: &str = "x-mcp-broker-version";

/// How many connections to the service a client keeps open.
const MAX_IDLE: usize = 16;

/// How long a client waits for a service it started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the mcp-broker service is not running and could not be started: {0}")]
    Start(String),
    /// Nothing answers on the socket, or a service going away never read the request: it
    /// was not forwarded, so it may be sent again once a service runs.
    #[error("the mcp-broker service is not running: {0}")]
    NotRunning(String),
    /// The service went away while a request was under way: it may have been forwarded.
    #[error("the connection to the mcp-broker service was lost: {0}")]
    Connection(String),
    #[error("{0}")]
    Api(String),
    /// An answer that is not what the API says (a service of another version, say).
    #[error("the mcp-broker service gave an answer this program cannot read (is it another version?): {0}")]
    BadAnswer(String),
}

/// A handle on the service's control socket.
#[derive(Debug, Clone)]
pub struct Control {
    socket: PathBuf,
    /// Open connections to the service, kept for the next request (HTTP/1.1 keep-alive).
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
    paths: Paths,
    home: Home,
    /// Environment variables a started service must not inherit (a client secret's).
    hidden_env: Vec<String>,
    /// The service this process started, if any: its child until it exits.
    started: Arc<Mutex<Option<u32>>>,
}

impl Control {
    /// Connect to the running service, starting `mcp-broker daemon` first if there is none.
    pub async fn connect_or_start(home: &Home) -> Result<Self, ClientError> {
        Self::connect_or_start_without(home, &[]).await
    }

    /// As [`Self::connect_or_start`], keeping the variables `hidden_env` out of a service
    /// it starts (the service, and the browser it opens, would otherwise inherit them).
    pub async fn connect_or_start_without(home: &Home, hidden_env: &[String]) -> Result<Self, ClientError> {
        let control = Self::at(home, hidden_env.to_vec());
        control.ensure_running().await?;
        Ok(control)
    }

    /// The running service, if one answers; never starts one.
    pub async fn connect(home: &Home) -> Option<Self> {
        let control = Self::at(home, Vec::new());
        control.is_running().await.then_some(control)
    }

    /// A handle on `home`'s socket, not yet connected.
    fn at(home: &Home, hidden_env: Vec<String>) -> Self {
        let paths = Paths::of(home);
        Self { socket: paths.socket.clone(), idle: Arc::default(), paths, home: home.clone(), hidden_env, started: Arc::default() }
    }

    /// Ask the service to stop and wait until it has exited (it finishes open requests and
    /// writes its audit first), so that whatever runs next finds it gone.
    pub async fn stop(self, timeout: Duration) -> Result<(), ClientError> {
        let pid = self.ping().await.ok().map(|p| p.pid);
        self.shutdown().await?;
        let paths = self.paths.clone();
        drop(self); // its kept connection would hold the stopping service's control socket
        let deadline = Instant::now() + timeout;
        // Done when the lock is free, or when it is held by another service (a host's bridge
        // may start the next one the moment this one lets go) because this one is gone.
        while instance::is_held(&paths) && pid.is_none_or(crate::platform::process::process_alive) {
            if Instant::now() >= deadline {
                return Err(ClientError::Api(format!("the service did not exit within {} s; see {}", timeout.as_secs(), paths.log.display())));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The process ID of the service this process started (its child), if it started one.
    pub fn started_service(&self) -> Option<u32> {
        self.started.lock().ok().and_then(|s| *s)
    }

    /// Whether a service answers on the socket now.
    pub async fn is_running(&self) -> bool {
        UnixStream::connect(&self.socket).await.is_ok()
    }

    /// Start the service if it does not answer, and wait until it does.
    pub async fn ensure_running(&self) -> Result<(), ClientError> {
        if self.is_running().await {
            return Ok(());
        }
        let mut child = self.spawn_daemon()?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.is_running().await {
                // Ours is the service only if it is still running (it may have lost the lock
                // to another client's, which is not our child).
                if let (Ok(None), Ok(mut started)) = (child.try_wait(), self.started.lock()) {
                    *started = Some(child.id());
                }
                std::thread::spawn(move || child.wait()); // reap it whenever it exits
                return Ok(());
            }
            // A daemon that lost the lock exits 0: to a service coming up (it answers soon) or
            // to one still stopping (it never will), so start another once that one is gone.
            // Any other exit is a failure worth reporting now, not after the timeout.
            if let Ok(Some(status)) = child.try_wait() {
                if !status.success() {
                    return Err(ClientError::Start(self.last_log_line()));
                }
                if !instance::is_held(&self.paths) {
                    child = self.spawn_daemon()?;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Err(ClientError::Start(format!("no answer within {} s; see {}", START_TIMEOUT.as_secs(), self.paths.log.display())))
    }

    /// `mcp-broker daemon`, detached from this process and its terminal, logging to the
    /// runtime dir. Two clients racing here start two daemons; the instance lock lets one live.
    fn spawn_daemon(&self) -> Result<std::process::Child, ClientError> {
        self.home.ensure().map_err(|e| ClientError::Start(e.to_string()))?;
        let exe = service_exe().map_err(|e| ClientError::Start(e.to_string()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.paths.log)
            .map_err(|e| ClientError::Start(format!("{}: {e}", self.paths.log.display())))?;
        let log2 = log.try_clone().map_err(|e| ClientError::Start(e.to_string()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["daemon", "--on-demand"]).stdin(Stdio::null()).stdout(log).stderr(log2);
        for var in &self.hidden_env {
            cmd.env_remove(var);
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().map_err(|e| ClientError::Start(e.to_string()))
    }

    /// The service log's last line, to explain a failed start.
    fn last_log_line(&self) -> String {
        let log = std::fs::read_to_string(&self.paths.log).unwrap_or_default();
        let line = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it exited at once");
        format!("{} (log: {})", line.trim(), self.paths.log.display())
    }

    /// Send one request and return the response with its body still streaming. The
    /// connection is closed with the body; see [`Self::send_leased`] to reuse it.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<hyper::Response<Incoming>, ClientError> {
        Ok(self.send_leased(req).await?.0)
    }

    /// Send one request on an idle connection when one is free (HTTP/1.1 keep-alive), else
    /// on a new one. The [`Lease`] gives the connection back once the caller has read the
    /// answer to its end, so two requests never share a connection at once (hyper would
    /// pipeline them). A request a reused connection could not start sending, or that the
    /// service provably never read ([`never_read`]), is sent on another: nothing twice.
    pub async fn send_leased(&self, mut req: Request<Full<Bytes>>) -> Result<(hyper::Response<Incoming>, Lease), ClientError> {
        while let Some(mut sender) = self.take_idle() {
            let copy = copy_request(&req);
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    check_version(&resp);
                    return Ok((resp, self.lease(sender)));
                }
                Err(mut e) => match (e.take_message(), e.into_error()) {
                    (Some(unsent), _) => req = unsent,
                    (None, e) if never_read(&e) => req = copy,
                    (None, e) => return Err(ClientError::Connection(e.to_string())),
                },
            }
        }
        let mut sender = self.open_connection().await?;
        let resp = sender.send_request(req).await.map_err(|e| cut_off(&e))?;
        check_version(&resp);
        Ok((resp, self.lease(sender)))
    }

    fn lease(&self, sender: SendRequest<Full<Bytes>>) -> Lease {
        Lease { sender: Some(sender), idle: self.idle.clone() }
    }

    async fn open_connection(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| ClientError::NotRunning(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::NotRunning(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// A connection ready for a request (its last answer was read to the end).
    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|s| !s.is_closed());
        let ready = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    /// A JSON call: the answer read as `T`, or its [`api::ErrorBody`] as [`ClientError::Api`].
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Bytes) -> Result<T, ClientError> {
        let (resp, lease) = self.send_leased(json_request(method, path, body)).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| ClientError::Connection(e.to_string()))?.to_bytes();
        lease.release();
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }
}

/// The typed control API: one method per route of [`api::ROUTES`] (but the bridge's MCP
/// endpoint, see [`mcp_path`]).
impl Control {
    /// `GET /v1/ping`: which service answers.
    pub async fn ping(&self) -> Result<api::Ping, ClientError> {
        self.call(Method::GET, "/v1/ping", Bytes::new()).await
    }

    /// `GET /v1/status`: every server, the endpoint, the service's problems.
    pub async fn status(&self) -> Result<api::Status, ClientError> {
        self.call(Method::GET, "/v1/status", Bytes::new()).await
    }

    /// The server named `name`, if the service knows one (how a client finds the URL to
    /// sign in to a server again).
    pub async fn server(&self, name: &str) -> Result<Option<api::Server>, ClientError> {
        Ok(self.status().await?.server(name).cloned())
    }

    /// `POST /v1/login`: sign in, reading the NDJSON stream of [`api::LoginEvent`]s to its
    /// `done` (the server) or `error`. `on_event` sees the progress in between (`open_url`,
    /// `browser_failed`); events this program does not know are skipped.
    pub async fn login(&self, req: &api::Login, mut on_event: impl FnMut(&api::LoginEvent)) -> Result<api::Server, ClientError> {
        let resp = self.send(json_request(Method::POST, "/v1/login", json_body(req))).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(api_error(status, &bytes));
        }
        let mut lines = Lines::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Connection(e.to_string()))?;
            let Some(chunk) = frame.data_ref() else { continue };
            for line in lines.push(chunk) {
                match login_event(&line)? {
                    Some(api::LoginEvent::Done { server }) => return Ok(server),
                    Some(api::LoginEvent::Error { message }) => return Err(ClientError::Api(message)),
                    Some(api::LoginEvent::Unknown) | None => {}
                    Some(event) => on_event(&event),
                }
            }
        }
        Err(ClientError::Connection("the service stopped during the sign-in".into()))
    }

    /// `POST /v1/login/paste`: the address a browser elsewhere ended on, for the sign-in
    /// in progress it belongs to.
    pub async fn paste(&self, url: &str) -> Result<api::Pasted, ClientError> {
        self.call(Method::POST, "/v1/login/paste", json_body(&api::Paste { url: url.to_owned() })).await
    }

    /// `POST /v1/resolve`: the name of the server given by URL, without signing in.
    pub async fn resolve(&self, req: &api::Login) -> Result<api::Resolved, ClientError> {
        self.call(Method::POST, "/v1/resolve", json_body(req)).await
    }

    /// `POST /v1/import`: hand the service a grant another tool obtained, to check, store
    /// and prove (the secrets travel over the private socket only).
    pub async fn import(&self, req: &api::Import) -> Result<api::Imported, ClientError> {
        self.call(Method::POST, "/v1/import", json_body(req)).await
    }

    /// `POST /v1/servers/{name}/refresh`: refresh the access token now.
    pub async fn refresh(&self, name: &str) -> Result<api::Refreshed, ClientError> {
        self.call(Method::POST, &format!("/v1/servers/{}/refresh", segment(name)), Bytes::new()).await
    }

    /// `POST /v1/servers/{name}/logout`: revoke the tokens and forget them; `local` forgets
    /// them even when the authorization server cannot be reached.
    pub async fn logout(&self, name: &str, local: bool) -> Result<api::LoggedOut, ClientError> {
        self.call(Method::POST, &format!("/v1/servers/{}/logout", segment(name)), json_body(&api::Logout { local })).await
    }

    /// `DELETE /v1/servers/{name}`: sign out (revoking) and forget the server.
    pub async fn remove_server(&self, name: &str) -> Result<api::ServerRemoved, ClientError> {
        self.call(Method::DELETE, &format!("/v1/servers/{}", segment(name)), Bytes::new()).await
    }

    /// `POST /v1/servers`: add a server that takes an API key.
    pub async fn add_server(&self, body: &api::AddServer) -> Result<api::Added, ClientError> {
        self.call(Method::POST, "/v1/servers", json_body(body)).await
    }

    /// `GET /v1/hosts`: the hosts with keys, and which host used which server.
    pub async fn hosts(&self) -> Result<api::Hosts, ClientError> {
        self.call(Method::GET, "/v1/hosts", Bytes::new()).await
    }

    /// `POST /v1/hosts`: create a host's key (the answer is the one time it is shown).
    pub async fn add_host(&self, req: &api::NewHost) -> Result<api::HostAdded, ClientError> {
        self.call(Method::POST, "/v1/hosts", json_body(req)).await
    }

    /// `DELETE /v1/hosts/{name}`: delete a host's key.
    pub async fn remove_host(&self, name: &str) -> Result<api::HostRemoved, ClientError> {
        self.call(Method::DELETE, &format!("/v1/hosts/{}", segment(name)), Bytes::new()).await
    }

    /// `GET /v1/approvals`: what waits for the user (asking marks a UI as attached).
    pub async fn approvals(&self) -> Result<api::Approvals, ClientError> {
        self.call(Method::GET, "/v1/approvals", Bytes::new()).await
    }

    /// `POST /v1/approvals/{id}`: answer a pending approval.
    pub async fn decide(&self, id: u64, decision: Decision) -> Result<api::Ack, ClientError> {
        self.call(Method::POST, &format!("/v1/approvals/{id}"), json_body(&api::Decide { decision })).await
    }

    /// `DELETE /v1/decisions/{host}/{server}`: forget a decision; the host will be asked again.
    pub async fn revoke_decision(&self, host: &str, server: &str) -> Result<api::Ack, ClientError> {
        self.call(Method::DELETE, &pair_path("decisions", host, server), Bytes::new()).await
    }

    /// `GET /v1/policy/{host}/{server}`: the tools the server listed last, each enabled or not.
    pub async fn policy(&self, host: &str, server: &str) -> Result<api::Policy, ClientError> {
        self.call(Method::GET, &pair_path("policy", host, server), Bytes::new()).await
    }

    /// `PUT /v1/policy/{host}/{server}`: set the tools this host may not call.
    pub async fn set_policy(&self, host: &str, server: &str, req: &api::SetPolicy) -> Result<api::Ack, ClientError> {
        self.call(Method::PUT, &pair_path("policy", host, server), json_body(req)).await
    }

    /// `GET /v1/audit`: the latest calls, newest first.
    pub async fn audit(&self, query: &api::AuditQuery) -> Result<api::Calls, ClientError> {
        self.call(Method::GET, &format!("/v1/audit?{}", query.to_query()), Bytes::new()).await
    }

    /// `POST /v1/shutdown`: ask the service to stop (see [`Self::stop`] to wait for it).
    pub async fn shutdown(&self) -> Result<api::Stopping, ClientError> {
        self.call(Method::POST, "/v1/shutdown", Bytes::new()).await
    }
}

/// What a failed call's body says, or its HTTP status when it says nothing readable.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(e) => ClientError::Api(e.error),
        Err(_) => ClientError::Api(format!("HTTP {status}")),
    }
}

/// A request body as JSON (the API's types always serialize).
fn json_body(body: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

/// The bytes not in a path segment as they are: all but letters, digits and `-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `s` as one path segment, percent-encoded: the service validates names, but a name is
/// still never trusted to hold no `/`, `%`, `?` or `#`. A segment of dots only (`.`, `..`)
/// is encoded whole, so that nothing on the way can take it for a step up the path.
pub fn segment(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b == b'.') {
        return "%2E".repeat(s.len());
    }
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `/v1/{what}/{host}/{server}`, both names escaped.
fn pair_path(what: &str, host: &str, server: &str) -> String {
    format!("/v1/{what}/{}/{}", segment(host), segment(server))
}

/// The bridge's MCP endpoint for the server `name` on the control socket.
pub fn mcp_path(name: &str) -> String {
    format!("/servers/{}/mcp", segment(name))
}

/// Splits a byte stream into lines as they complete (NDJSON arrives in arbitrary chunks).
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Add a chunk; returns the lines it completed, without their `\n`.
    fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            lines.push(line);
        }
        lines
    }
}

/// One NDJSON line of the login stream; `None` for a blank line.
fn login_event(line: &[u8]) -> Result<Option<api::LoginEvent>, ClientError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line).map(Some).map_err(|e| ClientError::BadAnswer(format!("a sign-in event: {e}")))
}

/// Warn once per process when the service that answers is another version than this
/// program: after an upgrade the old service runs on until stopped, and its API may differ.
fn check_version<B>(resp: &hyper::Response<B>) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let ours = env!("CARGO_PKG_VERSION");
    let theirs = match resp.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()) {
        Some(v) if v == ours => return,
        Some(v) => format!("version {}", v.chars().filter(char::is_ascii_graphic).take(32).collect::<String>()),
        // Services from before this check name no version: one still running is older.
        None if resp.status().is_success() => "an older version".to_owned(),
        None => return,
    };
    WARNED.call_once(|| {
        tracing::warn!("the running mcp-broker service is {theirs}, this program {ours}: run `mcp-broker stop`, and the next command or host starts the new one");
    });
}

/// The same request again (its body is reference-counted, so this copies the head only).
fn copy_request(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// Whether a connection failed in a way that proves the service never read the request:
/// writing to a Unix socket whose peer is gone fails with `EPIPE`, and a peer that dies
/// with unread data (one request per connection at a time: ours) resets the connection.
/// A service that read the request and then died closes it cleanly instead. This holds
/// while the service acts only on whole request bodies and requests are never pipelined.
fn never_read(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset);
        }
        source = err.source();
    }
    false
}

/// The error of a request cut off on a new connection. A service that is dying (killed, or
/// crashed) still has its socket open for a moment: a connection made then is accepted by
/// the kernel, queued unread, and reset when the socket closes. That request provably never
/// reached the service ([`never_read`]), so it is [`ClientError::NotRunning`]: the caller may
/// start a service and send it again. Anything else may have been read and forwarded.
fn cut_off(e: &hyper::Error) -> ClientError {
    if never_read(e) {
        ClientError::NotRunning(format!("it went away before reading the request ({e})"))
    } else {
        ClientError::Connection(e.to_string())
    }
}

/// A connection lent for one request; [`Lease::release`] once its answer was read to the end.
pub struct Lease {
    sender: Option<SendRequest<Full<Bytes>>>,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl Lease {
    pub fn release(mut self) {
        let Some(sender) = self.sender.take() else { return };
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }
}

/// The file name of the small stdio bridge program, installed next to `mcp-broker`.
pub const BRIDGE_EXE: &str = "mcp-broker-bridge";

/// The bridge program beside this one (what `mcp-broker connect` execs).
pub fn bridge_exe() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(BRIDGE_EXE))
}

/// The `mcp-broker` binary that runs the service: this program, or when this program is the
/// bridge binary, the `mcp-broker` beside it.
pub fn service_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // After a package upgrade replaced the running file, Linux names it "… (deleted)".
    let name = exe.file_name().map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_owned());
    Ok(if name.as_deref() == Some(BRIDGE_EXE) { exe.with_file_name("mcp-broker") } else { exe })
}

/// A request to the control socket with a JSON body (empty for none).
fn json_request(method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mcp-broker")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// Whether a status means "retry after starting the service".
pub fn is_success(status: StatusCode) -> bool {
    status.is_success()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    #[test]
    fn names_in_paths_are_percent_encoded() {
        assert_eq!(segment("linear"), "linear");
        assert_eq!(segment("my_host-1.x~"), "my_host-1.x~");
        assert_eq!(segment("a/b"), "a%2Fb");
        assert_eq!(segment("50%"), "50%25");
        assert_eq!(segment("../etc"), "..%2Fetc");
        assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("."), "%2E");
    }

    #[test]
    fn route_paths_escape_each_name() {
        assert_eq!(pair_path("policy", "cursor/x", "50%"), "/v1/policy/cursor%2Fx/50%25");
        assert_eq!(mcp_path("a/b"), "/servers/a%2Fb/mcp");
        assert_eq!(mcp_path("linear"), "/servers/linear/mcp");
    }

    #[test]
    fn ndjson_lines_are_split_across_chunks() {
        let mut lines = Lines::default();
        assert!(lines.push(b"{\"event\":").is_empty());
        assert_eq!(lines.push(b"\"x\"}\n{\"a\"\n"), [b"{\"event\":\"x\"}".to_vec(), b"{\"a\"".to_vec()]);
        assert_eq!(lines.push(b"\n"), [Vec::<u8>::new()]);
    }

    #[test]
    fn login_lines_parse_to_events() {
        let open = login_event(br#"{"event":"open_url","url":"https://as.example/a"}"#).unwrap();
        assert!(matches!(open, Some(api::LoginEvent::OpenUrl { url }) if url.as_str() == "https://as.example/a"));
        assert_eq!(login_event(br#"{"event":"error","message":"no"}"#).unwrap(), Some(api::LoginEvent::Error { message: "no".into() }));
        assert_eq!(login_event(br#"{"event":"later","x":1}"#).unwrap(), Some(api::LoginEvent::Unknown));
        assert_eq!(login_event(b"  ").unwrap(), None);
        assert!(matches!(login_event(b"not json"), Err(ClientError::BadAnswer(_))));
    }

    #[test]
    fn failed_calls_say_the_services_error_or_the_status() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"error":"no server x"}"#);
        assert_eq!(e.to_string(), "no server x");
        let e = api_error(StatusCode::BAD_REQUEST, b"Invalid URL");
        assert_eq!(e.to_string(), "HTTP 400 Bad Request");
    }

    /// A control handle on a fresh home, and a listener on its socket standing in for a service.
    fn service_socket(dir: &std::path::Path) -> (Control, UnixListener) {
        let home = Home::at(dir).unwrap();
        home.ensure().unwrap();
        let control = Control::at(&home, Vec::new());
        let listener = UnixListener::bind(&control.socket).unwrap();
        (control, listener)
    }

    fn ping() -> Request<Full<Bytes>> {
        json_request(Method::GET, "/v1/ping", Bytes::new())
    }

    #[tokio::test]
    async fn a_request_a_dying_service_never_read_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let (control, listener) = service_socket(dir.path());
        // The service dies with the request unread in its socket: the kernel resets the connection.
        let dying = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            conn.readable().await.unwrap();
        });
        let err = control.send_leased(ping()).await.err().expect("the request fails");
        dying.await.unwrap();
        assert!(matches!(err, ClientError::NotRunning(_)), "{err:?}: never read, so it may be sent again");
    }

    #[tokio::test]
    async fn a_request_the_service_read_before_dying_is_a_lost_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (control, listener) = service_socket(dir.path());
        // The service reads the whole request (no body: up to the blank line), then dies.
        let dying = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "the whole request arrives");
                head.push(byte[0]);
            }
        });
        let err = control.send_leased(ping()).await.err().expect("the request fails");
        dying.await.unwrap();
        assert!(matches!(err, ClientError::Connection(_)), "{err:?}: it may have been forwarded, so never sent twice");
    }
}
