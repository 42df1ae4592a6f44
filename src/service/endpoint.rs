//! The loopback MCP endpoint for hosts that speak Streamable HTTP:
//! `http://127.0.0.1:PORT/servers/NAME/mcp`.
//!
//! Before anything reaches the proxy, in this order:
//! 1. `Host` must be `127.0.0.1:PORT` or `localhost:PORT` (DNS rebinding) → else 403;
//! 2. an `Origin`, if present, must be that same loopback origin (a web page) → else 403,
//!    which also refuses every cross-site CORS preflight: no `Access-Control-*` is ever sent;
//! 3. `Authorization: Bearer <host key>` must name a host (`mcp-broker hosts add`) → else 401;
//! 4. the connection must come from a program of this user, unless the host was added with
//!    `--any-user` ([`crate::platform::peer`]; Linux) → else 403, so a key that leaks to another user
//!    of the machine is of no use to them;
//!
//! only then is the body read.
//!
//! Served by hyper directly rather than through `axum::serve`, whose connection builder
//! cannot be configured: hyper's gives the header-read timeout that keeps other local
//! processes (any user can reach loopback TCP) from holding connections open without ever
//! sending a request. It is one route, matched by hand ([`server_name`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::Service;
use crate::platform::peer;

/// How long a connection may take to send a request's head, and may sit idle between
/// requests (hyper counts both), before it is closed. Hosts' own clients drop idle
/// connections sooner (undici after 4 s), so they never race this close.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a full endpoint says so in the log.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The most host connections open at once, so that a flood of connections (from any local
/// user) cannot use up the service's file descriptors, which its control socket, bridges and
/// upstream connections need too. When all are taken, a new connection closes the oldest one
/// that has not yet shown a host key; when every one has, new ones wait (up to
/// [`MAX_WAITING`]) until one closes. So a flood without a key never keeps a host out.
pub const MAX_CONNECTIONS: usize = 512;

/// How many accepted connections may wait for a place when every place is taken by a host
/// (beyond that they are closed at once).
const MAX_WAITING: usize = 64;

/// What the accept loop and the connection's requests know of one open connection.
struct Slot {
    /// A request on it carried a valid host key.
    authenticated: AtomicBool,
    /// Close it now (to make room for a new connection).
    evict: Notify,
    /// Our address and the host's.
    addrs: Option<(SocketAddr, SocketAddr)>,
    /// Who opened it, looked up once, when a key that serves only the user's own programs is
    /// first presented on it.
    owner: OnceLock<peer::Owner>,
}

impl Slot {
    fn of(stream: &TcpStream) -> Self {
        let addrs = stream.local_addr().ok().zip(stream.peer_addr().ok());
        Self { authenticated: AtomicBool::new(false), evict: Notify::new(), addrs, owner: OnceLock::new() }
    }

    fn owner(&self) -> peer::Owner {
        *self.owner.get_or_init(|| self.addrs.map_or(peer::Owner::Gone, |(local, remote)| peer::owner(local, remote)))
    }
}

/// Serve the endpoint until `stop` resolves; then open connections finish their requests
/// and close (the caller bounds how long that may take).
pub async fn serve(listener: TcpListener, service: Arc<Service>, stop: impl Future<Output = ()>) -> std::io::Result<()> {
    let (stopping, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut warned: Option<Instant> = None;
    let mut slots: Vec<Arc<Slot>> = Vec::new(); // oldest first
    let mut waiting: VecDeque<TcpStream> = VecDeque::new();
    let admit = |stream: TcpStream, slots: &mut Vec<Arc<Slot>>, connections: &mut JoinSet<()>| {
        if slots.len() >= 2 * MAX_CONNECTIONS {
            forget_closed(slots); // else a service serving short connections for days grows
        }
        let slot = Arc::new(Slot::of(&stream));
        slots.push(slot.clone());
        connections.spawn(connection(stream, service.clone(), stop_rx.clone(), slot));
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS || make_room(&mut slots) => admit(stream, &mut slots, &mut connections),
                Ok((stream, _)) => {
                    if warned.is_none_or(|t| t.elapsed() > FULL_WARNING_EVERY) {
                        tracing::warn!("the MCP endpoint has {MAX_CONNECTIONS} hosts connected: new connections wait until one closes");
                        warned = Some(Instant::now());
                    }
                    if waiting.len() < MAX_WAITING {
                        waiting.push_back(stream);
                    } // else it is closed
                }
                Err(e) => accept_failed(e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                if connections.len() < MAX_CONNECTIONS {
                    if let Some(stream) = waiting.pop_front() {
                        admit(stream, &mut slots, &mut connections);
                    }
                }
            }
            () = &mut stop => break,
        }
    }
    let _ = stopping.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Close the oldest connection that never showed a host key, if there is one. Its slot
/// frees as its task ends; until then one more connection than the limit is open.
fn make_room(slots: &mut Vec<Arc<Slot>>) -> bool {
    forget_closed(slots);
    match slots.iter().position(|s| !s.authenticated.load(Ordering::Relaxed)) {
        Some(oldest) => {
            slots.remove(oldest).evict.notify_one();
            true
        }
        None => false,
    }
}

/// Drop the slots of connections that have closed (a live connection's task holds the other
/// reference).
fn forget_closed(slots: &mut Vec<Arc<Slot>>) {
    slots.retain(|s| Arc::strong_count(s) > 1);
}

/// A connection that died in the accept queue is skipped; anything else (out of file
/// descriptors) is logged and accepting resumes after a pause.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::warn!("the MCP endpoint cannot accept a connection: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One host connection: HTTP/1.1 keep-alive until the host closes it, it idles past the
/// timeout, or the service stops (then the request in flight finishes first).
async fn connection(stream: TcpStream, service: Arc<Service>, mut stop: watch::Receiver<bool>, slot: Arc<Slot>) {
    // Small JSON-RPC answers must not wait for Nagle's algorithm and a delayed ACK (~40 ms).
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let seen = slot.clone();
    let handler = service_fn(move |req| {
        let (service, seen) = (service.clone(), seen.clone());
        async move { Ok::<_, Infallible>(endpoint(&service, req, &seen).await) }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), handler);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!("MCP endpoint connection: {e}");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
        () = slot.evict.notified() => return, // it never showed a key: dropped, not drained
    }
    let _ = conn.await;
}

/// `NAME` in `/servers/NAME/mcp`, the endpoint's one route.
fn server_name(path: &str) -> Option<&str> {
    path.strip_prefix("/servers/")?.strip_suffix("/mcp").filter(|name| crate::vault::valid_name(name))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, Json(json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32000, "message": message } }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            "www-authenticate",
            http::HeaderValue::from_static("Bearer realm=\"mcp-broker\", error=\"invalid_token\", error_description=\"use the key from mcp-broker hosts add\""),
        );
    }
    r
}

/// The host header values this endpoint answers to.
fn allowed_host(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    host == format!("127.0.0.1:{port}") || host.eq_ignore_ascii_case(&format!("localhost:{port}"))
}

fn allowed_origin(headers: &HeaderMap, port: u16) -> bool {
    match headers.get(http::header::ORIGIN).map(|v| v.to_str()) {
        None => true,
        Some(Ok(o)) => o == format!("http://127.0.0.1:{port}") || o.eq_ignore_ascii_case(&format!("http://localhost:{port}")),
        Some(Err(_)) => false,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
}

async fn endpoint(s: &Service, req: Request<Incoming>, conn: &Slot) -> Response {
    let Some(name) = server_name(req.uri().path()) else {
        return refuse(StatusCode::NOT_FOUND, "no such endpoint; MCP servers are at /servers/NAME/mcp");
    };
    let name = name.to_owned();
    let headers = req.headers();
    if !allowed_host(headers, s.port) {
        return refuse(StatusCode::FORBIDDEN, "forbidden Host header (DNS rebinding protection)");
    }
    if !allowed_origin(headers, s.port) {
        return refuse(StatusCode::FORBIDDEN, "forbidden Origin: web pages may not use mcp-broker");
    }
    let host = match bearer(headers).map(|k| s.hosts.authenticate(k)) {
        Some(Ok(Some(host))) => host,
        Some(Err(e)) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot check host keys: {e}")),
        _ => return refuse(StatusCode::UNAUTHORIZED, "missing or unknown host key: create one with `mcp-broker hosts add NAME`"),
    };
    if !host.any_user && !conn.owner().admitted() {
        tracing::warn!(host = %host.name, owner = ?conn.owner(), "refused a host key from another user's program");
        return refuse(
            StatusCode::FORBIDDEN,
            "this host key serves only the programs of the user who created it; for a host run as another user, create its key with `mcp-broker hosts add NAME --any-user`",
        );
    }
    conn.authenticated.store(true, Ordering::Relaxed);
    // The body is read only once the host is known.
    s.proxy.serve(host.name, name, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn one_route() {
        assert_eq!(server_name("/servers/alpha/mcp"), Some("alpha"));
        assert_eq!(server_name("/servers/a.b-c_d/mcp"), Some("a.b-c_d"));
        for other in ["/servers//mcp", "/servers/alpha/mcp/", "/servers/a/b/mcp", "/servers/%61/mcp", "/mcp", "/servers/alpha", "/"] {
            assert_eq!(server_name(other), None, "{other}");
        }
    }

    #[test]
    fn host_and_origin_rules() {
        assert!(allowed_host(&h(&[("host", "127.0.0.1:5000")]), 5000));
        assert!(allowed_host(&h(&[("host", "LOCALHOST:5000")]), 5000));
        assert!(!allowed_host(&h(&[("host", "evil.example:5000")]), 5000));
        assert!(!allowed_host(&h(&[("host", "127.0.0.1:5001")]), 5000));
        assert!(!allowed_host(&h(&[]), 5000));
        assert!(allowed_origin(&h(&[]), 5000));
        assert!(allowed_origin(&h(&[("origin", "http://127.0.0.1:5000")]), 5000));
        assert!(!allowed_origin(&h(&[("origin", "https://evil.example")]), 5000));
        assert!(!allowed_origin(&h(&[("origin", "null")]), 5000));
        assert_eq!(bearer(&h(&[("authorization", "bearer  k1 ")])), Some("k1"));
        assert_eq!(bearer(&h(&[("authorization", "Basic k1")])), None);
    }
}
