//! The loopback MCP endpoint for hosts that speak Streamable HTTP:
//! `http://127.0.0.1:PORT/servers/NAME/mcp`.
//!
//! Before anything reaches the proxy, in this order:
//! 1. `Host` must be `127.0.0.1:PORT` or `localhost:PORT` (DNS rebinding) → else 403;
//! 2. an `Origin`, if present, must be that same loopback origin (a web page) → else 403,
//!    which also refuses every cross-site CORS preflight: no `Access-Control-*` is ever sent;
//! 3. `Authorization: Bearer <host key>` must name a host (`mcp-broker hosts add`) → else 401.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;

use super::Service;
use crate::proxy::Inbound;

pub fn router(service: Arc<Service>) -> Router {
    Router::new().route("/servers/{name}/mcp", any(endpoint)).fallback(not_found).with_state(service)
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such endpoint; MCP servers are at /servers/NAME/mcp")
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

async fn endpoint(State(s): State<Arc<Service>>, Path(name): Path<String>, req: Request) -> Response {
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
    // The body is read only once the host is known.
    match Inbound::read(host, name, req).await {
        Ok(inbound) => s.proxy.handle(inbound).await,
        Err(refused) => refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
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
