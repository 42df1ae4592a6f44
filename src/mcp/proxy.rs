//! The one proxy path: a host's Streamable HTTP request, forwarded to the remote MCP
//! server with the right token.
//!
//! Both shims (the stdio bridge over the control socket and the loopback TCP endpoint)
//! end here, so token attachment, refresh, 401/403 handling and audit happen once:
//!
//! 1. Resolve the server; with no tokens yet, sign in (one login for every waiting host).
//! 2. Attach its access token (refreshed ahead of expiry, single-flight).
//! 3. Upstream 401: refresh once and retry; still 401: `needs_login` and a clear error.
//! 4. Upstream 403 `insufficient_scope`: step up to the union of scopes, retry, at most
//!    [`crate::broker::step_up::MAX_STEP_UPS`] times.
//! 5. Pass the answer back ([`answer`]: whole when it already is, else streamed as it
//!    arrives), and record the call.
//!
//! On the way, `tools/list` answers are filtered by the host's tool policy, and `tools/call`
//! gets the `Mcp-Param-*` headers its tool's schema asks for ([`params`]).


use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use oauth2::AccessToken;
use time::OffsetDateTime;

use crate::audit::{Audit, Call};
use crate::broker::api_keys::KeyedAuth;
use crate::broker::{Asker, Broker, Error as BrokerError};
use crate::consent::{Consent, Refused};
use crate::oauth::discovery::www_authenticate::bearer_challenge;
use crate::oauth::discovery::{BearerChallenge, DiscoveryError, Unauthorized};
use crate::broker::underway::{Shown, SignIn};
use crate::oauth::login::{browser, DynProgress, Method as SignInMethod};
use super::jsonrpc::{code, MessageInfo};
use super::{answer, headers, jsonrpc, params, tools as policy, upstream};
use super::legacy::Legacy;
use super::upstream::Credential;

/// The largest `tools/list` answer read for filtering.
const MAX_TOOLS_LIST_BYTES: usize = 8 * 1024 * 1024;

/// The largest error answer read to see whether it is a `HeaderMismatch`.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The most `tools/list` pages the proxy reads to learn a server's `x-mcp-header` marks.
const MAX_LIST_PAGES: usize = 20;

/// How long a host's request waits for a sign-in in the browser here before it is answered
/// with the address instead (the sign-in goes on; the host tries again).
const HOST_SIGN_IN_WAIT: Duration = Duration::from_secs(15);

/// Host and server pairs whose URL capability is remembered; past it the memory starts over.
const MAX_REMEMBERED_HOSTS: usize = 4096;

/// One request from a host, with its body read (MCP messages are small; responses stream).
#[derive(Debug)]
pub struct Inbound {
    pub host: String,
    pub server: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether this message declares that the host can show its user an address to open
    /// (URL-mode elicitation); `None`: it declares no capabilities.
    pub shows_urls: Option<bool>,
}

/// The largest host message read (what axum allows a body by default).
const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

impl Inbound {
    /// Take a host's request apart (its headers moved, not copied) and read its body.
    async fn read<B>(host: String, server: String, req: http::Request<B>) -> Result<Self, Response>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        match http_body_util::Limited::new(body, MAX_MESSAGE_BYTES).collect().await {
            Ok(body) => Ok(Self { host, server, method: parts.method, headers: parts.headers, body: body.to_bytes(), shows_urls: None }),
            Err(e) => {
                let msg = format!("cannot read the request body (at most {} MiB): {e}", MAX_MESSAGE_BYTES >> 20);
                Err((StatusCode::PAYLOAD_TOO_LARGE, axum::Json(jsonrpc::error(None, code::INVALID_REQUEST, &msg))).into_response())
            }
        }
    }
}

pub struct Proxy {
    broker: Arc<Broker>,
    audit: Arc<Audit>,
    consent: Arc<Consent>,
    upstream: upstream::Upstream,
    urls: UrlCache,
    progress: Arc<DynProgress>,
    /// Per host and server, whether the host declared URL-mode elicitation at `initialize`.
    shows_urls: Mutex<HashMap<(String, String), bool>>,
    /// Per server, its tools (from the last `tools/list`) with `x-mcp-header` parameters.
    param_headers: Mutex<HashMap<String, HashMap<String, Vec<params::ParamHeader>>>>,
    /// Sessions with servers that speak only HTTP+SSE (2024-11-05).
    legacy: Legacy,
}

/// Why the broker answered instead of the upstream.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
    /// The JSON-RPC error's `data`, when it has one.
    data: Option<serde_json::Value>,
    /// What the log and the audit say instead of `message`, when that holds what only the
    /// host may see (a sign-in address with its `state`, a user code).
    logged: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), data: None, logged: None }
    }
}

impl Proxy {
    pub fn new(broker: Arc<Broker>, audit: Arc<Audit>, consent: Arc<Consent>, progress: Arc<DynProgress>) -> Result<Self, upstream::UpstreamError> {
        let upstream = upstream::Upstream::new()?;
        Ok(Self { broker, audit, consent, upstream, urls: UrlCache::default(), progress, shows_urls: Mutex::default(), param_headers: Mutex::default(), legacy: Legacy::default() })
    }

    /// A shim's request from `host` for `server`: read its body, forward it, answer the host.
    pub async fn serve<B>(&self, host: String, server: String, req: http::Request<B>) -> Response
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match Inbound::read(host, server, req).await {
            Ok(inbound) => self.handle(inbound).await,
            Err(refused) => refused,
        }
    }

    /// Forward one request and answer the host.
    pub async fn handle(&self, req: Inbound) -> Response {
        let started = Instant::now();
        let info = if req.method == Method::POST {
            match MessageInfo::parse(&req.body) {
                Ok(info) => info,
                Err(e) => {
                    let r = Refusal::new(StatusCode::BAD_REQUEST, e.code(), e.to_string());
                    return self.refuse(&req, &MessageInfo::default(), r, started);
                }
            }
        } else {
            MessageInfo::default()
        };
        if let Err(refused) = self.consent_for(&req, &info).await {
            let r = Refusal::new(StatusCode::FORBIDDEN, code::FORBIDDEN, refused.to_string());
            return self.refuse(&req, &info, r, started);
        }
        let mut req = req;
        req.shows_urls = info.shows_urls;
        self.remember_shows_urls(&req, &info);
        let answer = match info.tool() {
            Some(tool) => self.forward_call(&mut req, tool).await,
            None => self.forward(&req).await,
        };
        match answer {
            Ok(resp) => {
                self.record(&req, &info, resp.status().as_u16(), None, started);
                if info.method.as_deref() == Some("tools/list") && resp.status().is_success() {
                    return self.filter_tools(&req, resp).await;
                }
                resp
            }
            Err(refusal) => self.refuse(&req, &info, refusal, started),
        }
    }

    /// First-use approval, then the per-tool policy for `tools/call`.
    async fn consent_for(&self, req: &Inbound, info: &MessageInfo) -> Result<(), Refused> {
        let scopes = || self.broker.with_server(&req.server, |r| r.scopes.clone()).unwrap_or_default();
        self.consent.check(&req.host, &req.server, scopes).await?;
        match info.tool() {
            Some(tool) if self.consent.tool_disabled(&req.host, &req.server, tool) => {
                Err(Refused::ToolDisabled { host: req.host.clone(), server: req.server.clone(), tool: tool.to_owned() })
            }
            _ => Ok(()),
        }
    }

    /// Forward a `tools/call` with the `Mcp-Param-*` headers its tool asks for; a server that
    /// still answers `HeaderMismatch` gets it once more ([`Self::retry_on_header_mismatch`]).
    async fn forward_call(&self, req: &mut Inbound, tool: &str) -> Result<Response, Refusal> {
        self.add_param_headers(req, tool);
        match self.forward(req).await {
            Ok(resp) if resp.status() == StatusCode::BAD_REQUEST => self.retry_on_header_mismatch(req, tool, resp).await,
            other => other,
        }
    }

    /// Set the `Mcp-Param-*` headers of a call to a tool with `x-mcp-header` parameters, from
    /// its arguments (the body is what the server runs, so its values replace a host's).
    fn add_param_headers(&self, req: &mut Inbound, tool: &str) {
        let marks = {
            let known = self.param_headers.lock().unwrap_or_else(|p| p.into_inner());
            match known.get(&req.server).and_then(|tools| tools.get(tool)) {
                Some(marks) => marks.clone(),
                None => return,
            }
        };
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&req.body) else { return };
        for mark in &marks {
            req.headers.remove(mark.name()); // a parameter with no value has no header
        }
        for (name, value) in params::headers(&marks, msg.get("params").and_then(|p| p.get("arguments"))) {
            req.headers.insert(name, value);
        }
    }

    /// A call the server refused with `HeaderMismatch`: list its tools (their marks may be
    /// new to the proxy, which learns them from `tools/list`), then send the call once more
    /// with the headers they ask for. Any other `400` goes back to the host as it came.
    async fn retry_on_header_mismatch(&self, req: &mut Inbound, tool: &str, resp: Response) -> Result<Response, Refusal> {
        // A HeaderMismatch is a short JSON answer; anything else passes untouched, unread.
        let json = content_type(resp.headers()).starts_with("application/json");
        let length = hyper::body::Body::size_hint(resp.body()).exact(); // known once it is whole
        if !json || length.is_none_or(|n| n > MAX_ERROR_BYTES as u64) {
            return Ok(resp);
        }
        let (parts, body) = resp.into_parts();
        let Some(bytes) = read_whole(body, MAX_ERROR_BYTES, Duration::from_secs(10)).await else {
            return Err(Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, "the server's error answer was too large, too slow or cut off"));
        };
        if !params::is_header_mismatch(&bytes, false) {
            return Ok(Response::from_parts(parts, Body::from(bytes)));
        }
        tracing::info!(server = %req.server, tool, "the server wants Mcp-Param headers the proxy did not know of: listing its tools");
        self.list_tools_for(req).await;
        self.add_param_headers(req, tool);
        self.forward(req).await
    }

    /// List a server's tools for the proxy itself (every page, up to [`MAX_LIST_PAGES`]), in
    /// the host request's session and protocol version, to learn their `x-mcp-header` marks.
    async fn list_tools_for(&self, req: &Inbound) {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let list = Inbound {
                host: req.host.clone(),
                server: req.server.clone(),
                method: Method::POST,
                headers: params::list_headers(&req.headers),
                body: params::tools_list_request(&req.body, cursor.as_deref()).into(),
                shows_urls: None,
            };
            let page = match self.forward(&list).await {
                Ok(resp) if resp.status().is_success() => {
                    let sse = is_sse(resp.headers());
                    let bytes = read_whole(resp.into_body(), MAX_TOOLS_LIST_BYTES, Duration::from_secs(30)).await;
                    bytes.and_then(|b| params::result_message(&b, sse))
                }
                _ => None,
            };
            let Some(page) = page else {
                tracing::warn!(server = %req.server, "listing the tools to learn their Mcp-Param headers failed");
                return;
            };
            if let Some(tools) = policy::tools_of(&page) {
                self.remember_param_headers(&req.server, &tools);
            }
            cursor = page.pointer("/result/nextCursor").and_then(serde_json::Value::as_str).map(str::to_owned);
            if cursor.is_none() {
                return;
            }
        }
    }

    /// Remember which of a server's tools have `x-mcp-header` parameters (merged: a
    /// `tools/list` answer may be one page of several).
    fn remember_param_headers(&self, server: &str, tools: &[policy::ListedTool]) {
        let mut known = self.param_headers.lock().unwrap_or_else(|p| p.into_inner());
        let marked = known.entry(server.to_owned()).or_default();
        for t in tools {
            if t.param_headers.is_empty() {
                marked.remove(&t.name);
            } else {
                marked.insert(t.name.clone(), t.param_headers.clone());
            }
        }
    }

    /// Read a `tools/list` answer whole, remember the server's tools, and drop the ones
    /// disabled for this host.
    async fn filter_tools(&self, req: &Inbound, resp: Response) -> Response {
        let (mut parts, body) = resp.into_parts();
        let sse = is_sse(&parts.headers);
        let Some(bytes) = read_whole(body, MAX_TOOLS_LIST_BYTES, Duration::from_secs(60)).await else {
            let r = Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, "the server's tools/list answer was too large, too slow or cut off");
            return self.refuse(req, &MessageInfo::default(), r, Instant::now());
        };
        let disabled = self.consent.disabled_tools(&req.host, &req.server);
        let (body, tools) = policy::rewrite_body(&bytes, sse, &|name| disabled.contains(name));
        if let Some(tools) = tools {
            self.remember_param_headers(&req.server, &tools);
            self.consent.remember_tools(&req.server, tools.iter().map(policy::ListedTool::info).collect());
        }
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(body))
    }

    async fn forward(&self, req: &Inbound) -> Result<Response, Refusal> {
        if let Some(keyed) = self.broker.api_key(&req.server).map_err(refusal)? {
            return self.forward_keyed(req, &keyed).await;
        }
        if let Some(url) = self.broker.open_url(&req.server).map_err(refusal)? {
            return self.forward_open(req, &url, true).await;
        }
        self.forward_oauth(req, None).await
    }

    /// A server that asks for no sign-in: sent with nothing attached. Should it answer 401
    /// (it asks for a sign-in now), it is no longer taken for one that does not, and the
    /// request goes the OAuth way, its 401 in hand (`may_sign_in`: once).
    async fn forward_open(&self, req: &Inbound, url: &str, may_sign_in: bool) -> Result<Response, Refusal> {
        let uri = self.urls.get(url).map_err(|e| Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, format!("{} has a bad URL: {e}", req.server)))?;
        let resp = self.send(req, uri, Credential::None).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            if !may_sign_in {
                return Err(not_signed_in(&req.server, "it answers 401 without a token, but names no way to sign in"));
            }
            tracing::info!(server = %req.server, "the server asks for a sign-in now");
            self.broker.remove_open(&req.server).map_err(refusal)?;
            let refused = Unauthorized { challenge: challenge(resp.headers()) };
            return Box::pin(self.forward_oauth(req, Some(refused))).await;
        }
        Ok(answer::pass_back(resp, &req.method).await)
    }

    /// A server signed in to (or to sign in to, from its 401 to this request if `refused`).
    async fn forward_oauth(&self, req: &Inbound, refused: Option<Unauthorized>) -> Result<Response, Refusal> {
        let may_sign_in_again = refused.is_none();
        let mut token = match self.token(req, refused).await? {
            Access::Token(t) => t,
            Access::Open { url, until_asked } => return Box::pin(self.forward_open(req, &url, until_asked)).await,
        };
        let mut step_ups = 0;
        let mut refreshed = !may_sign_in_again; // a token just signed in for is not refreshed
        loop {
            let url = self.broker.with_server(&req.server, |r| self.urls.get(&r.url)).map_err(refusal)?;
            let url = url.map_err(|e| Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, format!("{} has a bad URL: {e}", req.server)))?;
            let resp = self.send(req, url, Credential::Bearer(&token)).await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    refreshed = true;
                    match self.broker.refresh_after_rejection(&req.server, &token).await {
                        Ok(t) => token = t,
                        Err(e) if may_sign_in_again && grant_is_gone(&e) => return self.sign_in_again(req, resp.headers()).await,
                        Err(e) => return Err(refusal(e)),
                    }
                }
                StatusCode::UNAUTHORIZED => {
                    let why = "the server refused a new token";
                    let _ = self.broker.mark_needs_login(&req.server, why);
                    if !may_sign_in_again {
                        return Err(not_signed_in(&req.server, why));
                    }
                    return self.sign_in_again(req, resp.headers()).await;
                }
                StatusCode::FORBIDDEN => match insufficient_scope(resp.headers()) {
                    Some(needed) => {
                        self.step_up(req, needed, step_ups).await?;
                        step_ups += 1;
                        token = self.token(req, None).await?.bearer(&req.server)?;
                    }
                    None => return Ok(answer::pass_back(resp, &req.method).await),
                },
                _ => return Ok(answer::pass_back(resp, &req.method).await),
            }
        }
    }

    /// The server refuses what the broker holds for it, and refreshing cannot help: sign in
    /// again from this 401, once. It may have moved to another authorization server
    /// (SEP-2352), where the sign-in registers a new client.
    async fn sign_in_again(&self, req: &Inbound, refused: &HeaderMap) -> Result<Response, Refusal> {
        tracing::info!(server = %req.server, "the server refuses its tokens: signing in again");
        let again = Unauthorized { challenge: challenge(refused) };
        Box::pin(self.forward_oauth(req, Some(again))).await
    }

    /// A server reached with an API key: no refresh and no step-up; a refusal says how to
    /// give it a new key.
    async fn forward_keyed(&self, req: &Inbound, keyed: &KeyedAuth) -> Result<Response, Refusal> {
        let url = self.urls.get(&keyed.url).map_err(|e| Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, format!("{} has a bad URL: {e}", req.server)))?;
        let resp = self.send(req, url, Credential::Headers(&keyed.headers)).await?;
        match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let msg = format!(
                    "{} refused its API key (HTTP {}); give it a new one with `mcp-broker add {} URL --bearer-env VAR` (or --header-env)",
                    req.server,
                    resp.status().as_u16(),
                    req.server
                );
                Err(Refusal::new(StatusCode::UNAUTHORIZED, code::NOT_SIGNED_IN, msg))
            }
            _ => Ok(answer::pass_back(resp, &req.method).await),
        }
    }

    /// The server's access token, signing in first when there is none. The sign-in runs in
    /// the background; the request waits for it while the browser here does its part (at
    /// most [`HOST_SIGN_IN_WAIT`]; not at all where there is no browser), then is answered
    /// with what the user is to do, so a host never hangs on a sign-in nobody sees.
    /// A server the sign-in finds asking for none ([`DiscoveryError::NotProtected`]), or
    /// not yet ([`BrokerError::NotAskedYet`]), is recorded as such: [`Access::Open`].
    async fn token(&self, req: &Inbound, refused: Option<Unauthorized>) -> Result<Access, Refusal> {
        let name = req.server.as_str();
        match self.broker.access_token(name).await {
            Ok(t) => return Ok(Access::Token(t)),
            Err(BrokerError::NotSignedIn(_) | BrokerError::UnknownServer(_)) => {}
            Err(e) => return Err(refusal(e)),
        }
        let mut login = self.broker.sign_in_request(name).map_err(refusal)?;
        let url = login.url.clone();
        let (headless, wait) = where_the_user_is(req);
        login.asked_by = Some(req.host.clone());
        login.headless = headless;
        login.refused = refused;
        match self.broker.sign_in_for_host(name, login, self.progress.clone(), wait).await {
            Ok(Some(signin)) => return Err(sign_in_needed(&signin, self.shows_urls(req))),
            Ok(None) => {}
            Err(e @ (BrokerError::Discovery(DiscoveryError::NotProtected { .. }) | BrokerError::NotAskedYet(_))) => {
                let until_asked = matches!(e, BrokerError::NotAskedYet(_));
                let open = self.broker.add_open(name, &url).map_err(refusal)?;
                tracing::info!(server = %name, until_asked, "the server asks for no sign-in: reached with no credential");
                return Ok(Access::Open { url: open.url, until_asked });
            }
            Err(e) => return Err(refusal(e)),
        }
        self.broker.access_token(name).await.map(Access::Token).map_err(refusal)
    }

    /// Step up to `needed` (step `attempt` of this request), waited for as a sign-in is
    /// ([`Self::token`]).
    async fn step_up(&self, req: &Inbound, needed: Vec<String>, attempt: u32) -> Result<(), Refusal> {
        let (headless, wait) = where_the_user_is(req);
        let asker = Asker { host: Some(req.host.clone()), headless };
        let (broker, name, progress) = (self.broker.clone(), req.server.clone(), self.progress.clone());
        let work = async move { broker.step_up(&name, &needed, attempt, &asker, progress.as_ref()).await.map(drop) };
        match self.broker.wait_for_host(&req.server, Box::pin(work), wait).await.map_err(refusal)? {
            Some(signin) => Err(sign_in_needed(&signin, self.shows_urls(req))),
            None => Ok(()),
        }
    }

    /// Remember what an `initialize` (or any message declaring URL elicitation) says of
    /// its host, for the requests after it; only such messages pay for the lock.
    fn remember_shows_urls(&self, req: &Inbound, info: &MessageInfo) {
        let Some(declared) = info.shows_urls else { return };
        if info.method.as_deref() != Some("initialize") && !declared {
            return;
        }
        let mut known = self.shows_urls.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_REMEMBERED_HOSTS {
            known.clear();
        }
        known.insert((req.host.clone(), req.server.clone()), declared);
    }

    /// Whether `req`'s host can show an address: as this message declares, else as its
    /// last `initialize` for this server did (asked only when a sign-in is needed).
    fn shows_urls(&self, req: &Inbound) -> bool {
        req.shows_urls.unwrap_or_else(|| {
            let known = self.shows_urls.lock().unwrap_or_else(|p| p.into_inner());
            known.get(&(req.host.clone(), req.server.clone())).copied().unwrap_or(false)
        })
    }

    /// Send a host's request upstream: over Streamable HTTP, or over HTTP+SSE to a server
    /// that speaks only that ([`Legacy`], told apart by its answer to `initialize`).
    async fn send(&self, req: &Inbound, url: Uri, credential: Credential<'_>) -> Result<http::Response<upstream::UpstreamBody>, Refusal> {
        let unreachable = |e: &(dyn std::error::Error + 'static)| {
            Refusal::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNAVAILABLE, format!("{} is unreachable: {}", req.server, root_cause(e)))
        };
        if self.legacy.speaks(&url) {
            match self.legacy.send(&self.upstream, &req.method, &url, &req.headers, credential, &req.body).await {
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => self.legacy.forget(&url),
                Err(e) => return Err(unreachable(&e)),
            }
        }
        let mut h = headers::to_upstream(&req.headers);
        if req.method == Method::POST {
            headers::ensure_post_defaults(&mut h);
        }
        let resp = self.upstream.send(req.method.clone(), url.clone(), h, credential, req.body.clone()).await.map_err(|e| unreachable(&e))?;
        if Legacy::worth_trying(&req.method, resp.status(), &req.body) {
            if let Some(legacy) = self.legacy.send(&self.upstream, &req.method, &url, &req.headers, credential, &req.body).await.map_err(|e| unreachable(&e))? {
                return Ok(legacy);
            }
        }
        Ok(resp)
    }

    fn refuse(&self, req: &Inbound, info: &MessageInfo, r: Refusal, started: Instant) -> Response {
        let logged = r.logged.as_ref().unwrap_or(&r.message);
        tracing::info!(server = %req.server, host = %req.host, "refused: {logged}");
        self.record(req, info, 0, Some(logged.clone()), started);
        // A request gets a JSON-RPC error it can show; a notification gets the HTTP status.
        let status = if info.id.is_some() { StatusCode::OK } else { r.status };
        let body = match r.data {
            Some(data) => jsonrpc::error_with_data(info.id.as_ref(), r.code, &r.message, data),
            None => jsonrpc::error(info.id.as_ref(), r.code, &r.message),
        };
        (status, axum::Json(body)).into_response()
    }

    fn record(&self, req: &Inbound, info: &MessageInfo, status: u16, error: Option<String>, started: Instant) {
        self.audit.record(Call {
            time: OffsetDateTime::now_utc(),
            host: req.host.clone(),
            server: req.server.clone(),
            method: info.method.clone().or_else(|| Some(req.method.to_string())),
            tool: info.tool().map(str::to_owned),
            status,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            error,
        });
    }
}

/// An answer's `Content-Type` ("" when it has none).
fn content_type(h: &HeaderMap) -> &str {
    h.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Whether an answer is an SSE stream.
fn is_sse(h: &HeaderMap) -> bool {
    content_type(h).starts_with("text/event-stream")
}

/// An answer's body read whole, if it is at most `limit` bytes and ends within `wait`.
async fn read_whole(body: Body, limit: usize, wait: Duration) -> Option<Bytes> {
    tokio::time::timeout(wait, axum::body::to_bytes(body, limit)).await.ok()?.ok()
}

/// The answer's `Bearer` challenge, if it has one.
fn challenge(h: &HeaderMap) -> Option<BearerChallenge> {
    bearer_challenge(h.get_all(http::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()))
}

/// The scopes a 403 challenge asks for, when it is an `insufficient_scope` challenge.
fn insufficient_scope(h: &HeaderMap) -> Option<Vec<String>> {
    let c = challenge(h)?;
    (c.error.as_deref() == Some("insufficient_scope")).then(|| c.scopes())
}

/// Parsed upstream URLs by their text, so a request does not parse its server's URL again.
#[derive(Default)]
struct UrlCache(Mutex<HashMap<String, Uri>>);

impl UrlCache {
    /// Servers are few; a cache grown past this many (URLs edited over and over) starts over.
    const MAX: usize = 256;

    fn get(&self, text: &str) -> Result<Uri, http::uri::InvalidUri> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(url) = map.get(text) {
            return Ok(url.clone());
        }
        let url: Uri = text.parse()?;
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(text.to_owned(), url.clone());
        Ok(url)
    }
}

fn not_signed_in(name: &str, why: &str) -> Refusal {
    Refusal::new(StatusCode::UNAUTHORIZED, code::NOT_SIGNED_IN, format!("{name} needs a new sign-in ({why}): run `mcp-broker login {name}`"))
}

/// How a server is reached: with its access token, or (it asks for no sign-in) with none.
enum Access {
    Token(AccessToken),
    /// `until_asked`: it publishes metadata and may ask on a later request (its 401 then
    /// starts the sign-in).
    Open { url: String, until_asked: bool },
}

impl Access {
    /// The token, where one is expected (after a step-up).
    fn bearer(self, server: &str) -> Result<AccessToken, Refusal> {
        match self {
            Self::Token(t) => Ok(t),
            Self::Open { .. } => Err(not_signed_in(server, "it asked for more scopes, then for no sign-in at all")),
        }
    }
}

/// Why no browser can be opened where the host's user is (as its bridge says, else as the
/// service's own environment has it), and so how long a host's request waits for a sign-in
/// before it is answered.
fn where_the_user_is(req: &Inbound) -> (Option<String>, Duration) {
    let said = req.headers.get(headers::HEADLESS_HEADER).and_then(|v| v.to_str().ok());
    let headless = match said {
        Some("no") => None,
        Some(why) => Some(why.chars().filter(|c| !c.is_control()).take(40).collect()),
        None => browser::headless(|v| std::env::var(v).ok()),
    };
    let wait = if headless.is_some() { Duration::ZERO } else { HOST_SIGN_IN_WAIT };
    (headless, wait)
}

/// The answer to a request that waits for the user to sign in: for a host that shows
/// addresses, MCP's `URLElicitationRequiredError` (2025-11-25) with the address, which the
/// host shows (and opens, once the user agrees) before it retries; for others, an error
/// whose message says what to do.
fn sign_in_needed(signin: &SignIn, host_shows_urls: bool) -> Refusal {
    let name = &signin.server;
    let (url, todo) = match &signin.shown {
        Shown::Code(p) => {
            let code = p.user_code.expose();
            (p.verification_uri.to_string(), format!("enter the code {code} at {}", p.verification_uri))
        }
        Shown::Address { url, method } if *method == SignInMethod::Browser => (url.to_string(), format!("finish it in the browser window, or open {url}")),
        Shown::Address { url, .. } => (url.to_string(), format!("open {url} in a browser")),
        Shown::Nothing => (String::new(), "run `mcp-broker login` to see how".to_owned()),
    };
    let follow = format!("`mcp-broker login {name}` follows it in a terminal");
    let logged = Some(format!("{name} needs a sign-in; the host was told how (`mcp-broker status` shows it)"));
    if host_shows_urls && !url.is_empty() {
        let message = format!("Sign in to {name} to continue: {todo}");
        let id = format!("mcp-broker-sign-in-{name}-{}", signin.started_at.unix_timestamp_nanos());
        let data = serde_json::json!({ "elicitations": [{ "mode": "url", "elicitationId": id, "url": url, "message": message }] });
        let mut r = Refusal::new(StatusCode::UNAUTHORIZED, code::URL_ELICITATION_REQUIRED, format!("{name} needs you to sign in: {todo} ({follow}), then try again"));
        r.data = Some(data);
        r.logged = logged;
        return r;
    }
    let mut r = Refusal::new(StatusCode::UNAUTHORIZED, code::NOT_SIGNED_IN, format!("{name} needs you to sign in: {todo} ({follow}), then try again"));
    r.logged = logged;
    r
}

/// True when a refresh failed because there is no grant left to refresh: only a new
/// sign-in helps.
fn grant_is_gone(e: &BrokerError) -> bool {
    use crate::oauth::login::TokenError;
    matches!(e, BrokerError::NotSignedIn(_) | BrokerError::Refresh { source: TokenError::InvalidGrant(_) | TokenError::InvalidClient(_), .. })
}

fn refusal(e: BrokerError) -> Refusal {
    match &e {
        BrokerError::UnknownServer(_) => Refusal::new(StatusCode::NOT_FOUND, code::UNKNOWN_SERVER, e.to_string()),
        BrokerError::NotSignedIn(name) => not_signed_in(name, "not signed in"),
        BrokerError::SignedOut(_) => Refusal::new(StatusCode::UNAUTHORIZED, code::NOT_SIGNED_IN, e.to_string()),
        BrokerError::StepUp { .. } => Refusal::new(StatusCode::FORBIDDEN, code::FORBIDDEN, e.to_string()),
        BrokerError::Refresh { name, source: crate::oauth::login::TokenError::InvalidGrant(_) | crate::oauth::login::TokenError::InvalidClient(_) } => {
            not_signed_in(name, "its authorization server ended the grant")
        }
        _ => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, code::UPSTREAM_UNAVAILABLE, e.to_string()),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
