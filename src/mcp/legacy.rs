//! The HTTP+SSE transport of MCP 2024-11-05, upstream, behind the Streamable HTTP face the
//! shims speak: hosts and the rest of the proxy see a Streamable HTTP server.
//!
//! A server is told to speak it as the 2025-03-26 spec's backwards-compatibility rule says:
//! a POSTed `initialize` is answered 404 or 405, and a GET of the same URL opens an event
//! stream whose first event is `endpoint`. Then, for each host session:
//!
//! 1. The GET stream stays open. Its `endpoint` event names where messages are POSTed; it
//!    must be on the server's own origin, since the token goes with every POST.
//! 2. A host's request is POSTed there (the server answers 202); its response arrives on
//!    the stream, and goes back to the host as an event-stream answer, after whatever the
//!    server sends meanwhile (notifications, its own requests).
//! 3. The session id the host sees (`Mcp-Session-Id`) is the broker's; a `DELETE`, the end
//!    of the server's stream, or half an hour unused ends the session.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::jsonrpc::MessageInfo;
use super::sse::{self, Event};
use super::upstream::{Credential, Upstream, UpstreamBody, UpstreamError};

/// How long the server has to send its `endpoint` event once the GET is answered.
const ENDPOINT_WAIT: Duration = Duration::from_secs(10);
/// Sessions kept at once; past it the oldest is closed.
const MAX_SESSIONS: usize = 256;
/// A session no host request has used for this long is closed when the next one opens (a
/// host that went away without its `DELETE`).
const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Server messages kept for a host that has no stream open to take them.
const MAX_HELD: usize = 64;
/// Messages queued for one host stream before the server's stream waits for it.
const STREAM_QUEUE: usize = 32;
const SESSION_HEADER: &str = "mcp-session-id";

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("its message endpoint {0:?} is not on its own origin; not used")]
    ForeignEndpoint(String),
    #[error("its event stream failed: {0}")]
    Stream(String),
}

/// Every session with servers that speak HTTP+SSE, and which servers do.
#[derive(Default)]
pub struct Legacy {
    /// Set once any server is known to speak it: until then no request takes a lock here.
    any: AtomicBool,
    servers: Mutex<HashSet<String>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

/// One host session: the server's stream, read by its own task, and where messages go.
struct Session {
    endpoint: Uri,
    /// When a host request last used it.
    used: Mutex<Instant>,
    routes: Arc<Mutex<Routes>>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Where the server's messages go: a response to the host stream waiting for its id, a
/// progress notification to the stream of the request that gave its token (so it comes
/// before that response); any other message to the newest waiting stream, else the host's
/// listening stream, else held.
#[derive(Default)]
struct Routes {
    waiting: HashMap<String, mpsc::Sender<Bytes>>,
    /// The progress tokens of waiting requests (as JSON text), and whose they are.
    progress: HashMap<String, String>,
    newest: Option<String>,
    listener: Option<mpsc::Sender<Bytes>>,
    held: VecDeque<Bytes>,
    ended: bool,
}

impl Routes {
    /// Stop waiting for request `id`: its stream, and its progress token, go.
    fn take(&mut self, id: &str) -> Option<mpsc::Sender<Bytes>> {
        self.progress.retain(|_, of| of != id);
        self.waiting.remove(id)
    }
}

impl Legacy {
    /// Whether `url` is known to speak HTTP+SSE (a relaxed load when none is).
    pub fn speaks(&self, url: &Uri) -> bool {
        self.any.load(Ordering::Relaxed) && lock(&self.servers).contains(&url.to_string())
    }

    /// Forget that `url` speaks it (it answered a GET with something else).
    pub fn forget(&self, url: &Uri) {
        lock(&self.servers).remove(&url.to_string());
    }

    /// Whether a Streamable HTTP answer says the server may speak the older transport: a
    /// POSTed `initialize` answered 404 or 405.
    pub fn worth_trying(method: &Method, status: StatusCode, body: &[u8]) -> bool {
        *method == Method::POST
            && matches!(status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED)
            && MessageInfo::parse(body).is_ok_and(|m| m.method.as_deref() == Some("initialize"))
    }

    /// Carry one host request to the server at `url` over HTTP+SSE. `Ok(None)`: the server
    /// does not speak it (an `initialize` whose GET opened no such stream).
    pub async fn send(
        &self,
        upstream: &Upstream,
        method: &Method,
        url: &Uri,
        headers: &HeaderMap,
        credential: Credential<'_>,
        body: &Bytes,
    ) -> Result<Option<Response<UpstreamBody>>, LegacyError> {
        let sid = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
        match (method, sid) {
            (&Method::POST, None) => self.initialize(upstream, url, credential, body).await,
            (&Method::POST, Some(sid)) => match self.session(sid) {
                Some(s) => Ok(Some(post(upstream, &s, credential, body, None).await?)),
                None => Ok(Some(session_gone())),
            },
            (&Method::GET, Some(sid)) => Ok(Some(match self.session(sid) {
                Some(s) => listen(&s),
                None => session_gone(),
            })),
            (&Method::DELETE, Some(sid)) => {
                lock(&self.sessions).remove(sid);
                Ok(Some(status_only(StatusCode::OK)))
            }
            _ => Ok(Some(status_only(StatusCode::METHOD_NOT_ALLOWED))),
        }
    }

    /// A message without a session: open one (its `initialize`), or `None`.
    async fn initialize(&self, upstream: &Upstream, url: &Uri, credential: Credential<'_>, body: &Bytes) -> Result<Option<Response<UpstreamBody>>, LegacyError> {
        let session = match open(upstream, url, credential).await? {
            Opened::Session(s) => Arc::new(s),
            Opened::Refused(resp) => return Ok(Some(resp)),
            Opened::NotLegacy => return Ok(None),
        };
        if !self.any.swap(true, Ordering::Relaxed) {
            tracing::info!("a server speaks the HTTP+SSE transport of 2024-11-05: carried over it");
        }
        lock(&self.servers).insert(url.to_string());
        let sid = self.add(session.clone());
        let resp = post(upstream, &session, credential, body, Some(&sid)).await?;
        if !resp.status().is_success() {
            lock(&self.sessions).remove(&sid);
        }
        Ok(Some(resp))
    }

    fn session(&self, sid: &str) -> Option<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(sid) {
            Some(s) if lock(&s.routes).ended => {
                sessions.remove(sid);
                None
            }
            Some(s) => {
                *lock(&s.used) = Instant::now();
                Some(s.clone())
            }
            None => None,
        }
    }

    /// Keep `session` under a new id, closing the oldest one when there are too many.
    fn add(&self, session: Arc<Session>) -> String {
        let sid = format!("{:032x}", rand::random::<u128>());
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| !lock(&s.routes).ended && lock(&s.used).elapsed() < IDLE_LIMIT);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| *lock(&s.used)).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(sid.clone(), session);
        sid
    }
}

enum Opened {
    Session(Session),
    /// The GET was refused for want of a (better) token: its answer goes back as it is.
    Refused(Response<UpstreamBody>),
    NotLegacy,
}

/// GET `url` as an HTTP+SSE server's stream and wait for its `endpoint` event.
async fn open(upstream: &Upstream, url: &Uri, credential: Credential<'_>) -> Result<Opened, LegacyError> {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let resp = upstream.send(Method::GET, url.clone(), h, credential, Bytes::new()).await?;
    if matches!(resp.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Ok(Opened::Refused(resp));
    }
    if !resp.status().is_success() || !crate::net::is_event_stream(resp.headers()) {
        return Ok(Opened::NotLegacy);
    }
    let mut body = resp.into_body();
    let mut parser = sse::Parser::default();
    let (first, rest) = match tokio::time::timeout(ENDPOINT_WAIT, first_event(&mut body, &mut parser)).await {
        Ok(Ok(Some(events))) => events,
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) | Err(_) => return Ok(Opened::NotLegacy),
    };
    if first.event.as_deref() != Some("endpoint") {
        return Ok(Opened::NotLegacy);
    }
    let endpoint = same_origin_endpoint(url, first.data.trim())?;
    let routes = Arc::new(Mutex::new(Routes::default()));
    let reader = tokio::spawn(read(body, parser, rest, routes.clone())).abort_handle();
    Ok(Opened::Session(Session { endpoint, used: Mutex::new(Instant::now()), routes, reader }))
}

/// The stream's first event and those that came with it.
async fn first_event(body: &mut UpstreamBody, parser: &mut sse::Parser) -> Result<Option<(Event, Vec<Event>)>, LegacyError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| LegacyError::Stream(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        let mut events = parser.feed(&data);
        if !events.is_empty() {
            let first = events.remove(0);
            return Ok(Some((first, events)));
        }
    }
    Ok(None)
}

/// The `endpoint` event's URI, resolved against the stream's URL; only on that origin.
fn same_origin_endpoint(stream: &Uri, named: &str) -> Result<Uri, LegacyError> {
    let foreign = || LegacyError::ForeignEndpoint(named.chars().take(200).collect());
    let base = url::Url::parse(&stream.to_string()).map_err(|_| foreign())?;
    let joined = base.join(named).map_err(|_| foreign())?;
    if joined.origin() != base.origin() {
        return Err(foreign());
    }
    joined.as_str().parse().map_err(|_| foreign())
}

/// Read the server's stream for as long as it lasts, routing each message.
async fn read(mut body: UpstreamBody, mut parser: sse::Parser, first: Vec<Event>, routes: Arc<Mutex<Routes>>) {
    deliver(&routes, first).await;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            deliver(&routes, parser.feed(&data)).await;
        }
    }
    let mut r = lock(&routes);
    r.ended = true;
    r.waiting.clear();
    r.progress.clear();
    r.listener = None;
}

async fn deliver(routes: &Mutex<Routes>, events: Vec<Event>) {
    for e in events.into_iter().filter(|e| e.event.as_deref().is_none_or(|t| t == "message")) {
        let wire = Bytes::from(Event { data: e.data.clone(), id: None, event: None }.to_wire());
        let Some((to, done)) = route(routes, &e.data, wire) else { continue };
        let _ = to.send(done.0).await; // a host that went away just misses it
        if done.1 {
            drop(to); // the response: its host stream ends here
        }
    }
}

/// Where one message goes, and whether it ends that stream; `None`: held, or dropped.
fn route(routes: &Mutex<Routes>, data: &str, wire: Bytes) -> Option<(mpsc::Sender<Bytes>, (Bytes, bool))> {
    let msg: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    let mut r = lock(routes);
    let id = msg.get("id").filter(|id| !id.is_null()).map(ToString::to_string);
    if let (None, Some(id)) = (msg.get("method"), &id) {
        return r.take(id).map(|tx| (tx, (wire, true)));
    }
    let of_request = msg.pointer("/params/progressToken").map(ToString::to_string).and_then(|t| r.progress.get(&t).cloned());
    let newest = r.newest.clone();
    let to = [of_request, newest]
        .into_iter()
        .flatten()
        .find_map(|id| r.waiting.get(&id).cloned())
        .or_else(|| r.listener.clone().filter(|l| !l.is_closed()));
    match to {
        Some(tx) => Some((tx, (wire, false))),
        None => {
            if r.held.len() >= MAX_HELD {
                r.held.pop_front();
            }
            r.held.push_back(wire);
            None
        }
    }
}

/// POST one host message to the session's endpoint. A request is answered with the stream
/// its response will come on; anything else with 202. `new_sid`: the session it opened.
async fn post(upstream: &Upstream, s: &Session, credential: Credential<'_>, body: &Bytes, new_sid: Option<&str>) -> Result<Response<UpstreamBody>, LegacyError> {
    let msg: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let request_id = msg.get("method").and(msg.get("id")).filter(|id| !id.is_null()).map(ToString::to_string);
    let token = msg.pointer("/params/_meta/progressToken").map(ToString::to_string);
    let rx = request_id.as_ref().map(|id| expect(&s.routes, id, token));
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let sent = upstream.send(Method::POST, s.endpoint.clone(), h, credential, body.clone()).await;
    let resp = match sent {
        Ok(resp) if resp.status().is_success() => resp,
        other => {
            if let Some(id) = &request_id {
                lock(&s.routes).take(id);
            }
            return Ok(other?);
        }
    };
    drop(resp);
    let mut out = match rx {
        Some(rx) => event_stream(rx),
        None => status_only(StatusCode::ACCEPTED),
    };
    if let Some(sid) = new_sid.and_then(|v| HeaderValue::from_str(v).ok()) {
        out.headers_mut().insert(SESSION_HEADER, sid);
    }
    Ok(out)
}

/// Wait for the response to request `id` (whose progress notifications carry `token`): its
/// stream, with what was held for the host.
fn expect(routes: &Mutex<Routes>, id: &str, token: Option<String>) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let mut r = lock(routes);
    for held in r.held.drain(..) {
        let _ = tx.try_send(held);
    }
    if let Some(t) = token {
        r.progress.insert(t, id.to_owned());
    }
    r.waiting.insert(id.to_owned(), tx);
    r.newest = Some(id.to_owned());
    rx
}

/// The host's listening stream (its GET): what the server sends outside responses.
fn listen(s: &Session) -> Response<UpstreamBody> {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let mut r = lock(&s.routes);
    for held in r.held.drain(..) {
        let _ = tx.try_send(held);
    }
    r.listener = Some(tx);
    event_stream(rx)
}

fn event_stream(rx: mpsc::Receiver<Bytes>) -> Response<UpstreamBody> {
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(Frame::data(b)), rx)) });
    let mut resp = Response::new(StreamBody::new(frames).boxed());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn status_only(status: StatusCode) -> Response<UpstreamBody> {
    let mut resp = Response::new(Empty::new().map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

/// What a host gets for a session that ended: 404, so it starts a new one.
fn session_gone() -> Response<UpstreamBody> {
    let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#;
    let mut resp = Response::new(Full::new(Bytes::from_static(body)).map_err(|e| match e {}).boxed());
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_stays_on_the_servers_origin() {
        let stream: Uri = "https://mcp.example/sse".parse().unwrap();
        assert_eq!(same_origin_endpoint(&stream, "/messages?sessionId=1").unwrap().to_string(), "https://mcp.example/messages?sessionId=1");
        assert_eq!(same_origin_endpoint(&stream, "messages").unwrap().to_string(), "https://mcp.example/messages");
        for foreign in ["https://evil.example/messages", "//evil.example/m", "http://mcp.example/messages", "https://mcp.example:444/m"] {
            assert!(same_origin_endpoint(&stream, foreign).is_err(), "{foreign}");
        }
    }

    #[test]
    fn only_an_initialize_answered_404_or_405_is_worth_trying() {
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(Legacy::worth_trying(&Method::POST, StatusCode::METHOD_NOT_ALLOWED, init));
        assert!(Legacy::worth_trying(&Method::POST, StatusCode::NOT_FOUND, init));
        assert!(!Legacy::worth_trying(&Method::POST, StatusCode::UNAUTHORIZED, init));
        assert!(!Legacy::worth_trying(&Method::POST, StatusCode::NOT_FOUND, list));
        assert!(!Legacy::worth_trying(&Method::GET, StatusCode::NOT_FOUND, init));
    }

    #[tokio::test]
    async fn responses_end_their_stream_and_other_messages_are_held_for_the_next() {
        let routes = Mutex::new(Routes::default());
        let note = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#;
        assert!(route(&routes, std::str::from_utf8(note).unwrap(), Bytes::from_static(b"n")).is_none(), "no stream: held");
        let mut rx = expect(&routes, "7", Some("\"p\"".into()));
        let (_, (_, ends)) = route(&routes, r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#, Bytes::new()).unwrap();
        assert!(!ends, "progress goes to its request's stream, which stays open");
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"n"), "the held message comes first");
        let (tx, (wire, ends)) = route(&routes, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, Bytes::from_static(b"r")).unwrap();
        assert!(ends);
        tx.send(wire).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"r"));
        assert!(rx.recv().await.is_none(), "the response ends the stream");
        assert!(route(&routes, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, Bytes::new()).is_none(), "an unknown id goes nowhere");
    }
}
