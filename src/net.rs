//! Outgoing HTTP with the limits every untrusted peer gets.
//!
//! MCP servers and authorization servers are strangers: their metadata can be huge, slow,
//! redirect in circles or point at plain-HTTP hosts. Every request the engine makes goes
//! through [`HttpClient`], which bounds time, size and redirects, and refuses any URL that is
//! neither `https` nor a loopback `http` address.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use reqwest::redirect;
use url::Url;

/// Largest response body read from any peer (metadata, token responses, registrations).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most redirects followed when fetching metadata.
pub const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a request to a peer failed, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not https (only loopback addresses may use plain http)")]
    Insecure(String),
    #[error("{url} answered with a body larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} redirected too often, in a loop, to an insecure URL, or (for token requests) at all")]
    Redirects { url: String },
    #[error("{url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered with an event stream, not a document")]
    EventStream { url: String },
}

/// True for hosts that never leave this machine.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Accept `https` anywhere and `http` only on loopback (RFC 8252 §8.3, OAuth 2.1 §1.5).
pub fn require_secure(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        _ => Err(FetchError::Insecure(url.to_string())),
    }
}

/// A response whose body has been read, within [`MAX_BODY_BYTES`].
#[derive(Debug)]
pub struct Fetched {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub url: Url,
    pub body: Vec<u8>,
}

/// The engine's HTTP client: one for metadata (bounded redirects), one for API calls
/// (no redirects: a token endpoint that redirects is refused, never followed).
#[derive(Clone, Debug)]
pub struct HttpClient {
    follow: reqwest::Client,
    direct: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, FetchError> {
        let build = |policy| {
            reqwest::Client::builder()
                .redirect(policy)
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("mcp-broker/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| FetchError::Unreachable { url: String::new(), reason: e.to_string() })
        };
        Ok(Self { follow: build(redirect_policy())?, direct: build(redirect::Policy::none())? })
    }

    /// GET a metadata document, following at most [`MAX_REDIRECTS`] secure redirects. An
    /// answer that is an event stream is refused unread: some MCP servers answer every GET
    /// with a stream that never ends.
    pub async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        require_secure(url)?;
        let req = self.follow.get(url.clone()).header("accept", "application/json");
        self.send(url, req).await
    }

    /// Send a request built on the no-redirect client and keep only its status and headers:
    /// the body (perhaps a stream that never ends) is dropped unread.
    pub async fn send_head(
        &self,
        url: &Url,
        build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap), FetchError> {
        require_secure(url)?;
        let resp = build(&self.direct).send().await.map_err(|e| classify(url, e))?;
        Ok((resp.status(), resp.headers().clone()))
    }

    /// Send a request built on the no-redirect client.
    pub async fn send_direct(
        &self,
        url: &Url,
        build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Fetched, FetchError> {
        require_secure(url)?;
        self.send(url, build(&self.direct)).await
    }

    /// Adapter for the `oauth2` crate: token, refresh and revocation requests go through the
    /// same limits (no redirects, bounded body, https-or-loopback).
    pub async fn oauth(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, FetchError> {
        let url = Url::parse(&request.uri().to_string())
            .map_err(|e| FetchError::Unreachable { url: request.uri().to_string(), reason: e.to_string() })?;
        let (parts, body) = request.into_parts();
        let fetched = self
            .send_direct(&url, |c| c.request(parts.method, url.clone()).headers(parts.headers).body(body))
            .await?;
        if fetched.status.is_redirection() {
            // A token or revocation endpoint that redirects would take the code, verifier
            // or secret elsewhere: refused, never followed.
            return Err(FetchError::Redirects { url: url.to_string() });
        }
        let mut response = http::Response::builder().status(fetched.status);
        if let Some(h) = response.headers_mut() {
            *h = fetched.headers;
        }
        response
            .body(fetched.body)
            .map_err(|e| FetchError::Unreachable { url: url.to_string(), reason: e.to_string() })
    }

    async fn send(&self, url: &Url, req: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        let resp = req.send().await.map_err(|e| classify(url, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        if is_event_stream(&headers) {
            return Err(FetchError::EventStream { url: url.to_string() });
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(FetchError::TooLarge { url: url.to_string(), limit: MAX_BODY_BYTES });
        }
        let body = read_bounded(url, resp).await?;
        Ok(Fetched { status, headers, url: final_url, body })
    }
}

/// The `oauth2` crate's requests run on [`HttpClient`] (a named impl, not a closure, so
/// the futures stay `Send` for every lifetime).
impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = FetchError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.oauth(request))
    }
}

/// True when the answer's `Content-Type` is `text/event-stream`.
pub fn is_event_stream(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Read a body chunk by chunk, stopping as soon as it passes the limit.
async fn read_bounded(url: &Url, resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(url, e))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::TooLarge { url: url.to_string(), limit: MAX_BODY_BYTES });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.to_vec())
}

fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let looped = attempt.previous().iter().any(|u| u == attempt.url());
        if looped || attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if require_secure(attempt.url()).is_err() {
            attempt.error("redirect to an insecure URL")
        } else {
            attempt.follow()
        }
    })
}

fn classify(url: &Url, e: reqwest::Error) -> FetchError {
    let url = url.to_string();
    if e.is_timeout() {
        FetchError::Timeout { url, secs: REQUEST_TIMEOUT.as_secs() }
    } else if e.is_redirect() {
        FetchError::Redirects { url }
    } else {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        FetchError::Unreachable { url, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_urls() {
        let ok = ["https://a.example/x", "http://127.0.0.1:9/x", "http://[::1]/", "http://localhost:1/"];
        for u in ok {
            assert!(require_secure(&Url::parse(u).unwrap()).is_ok(), "{u}");
        }
        let bad = ["http://evil.example/", "http://127.0.0.1.evil.example/", "file:///etc/passwd", "javascript:alert(1)"];
        for u in bad {
            assert!(require_secure(&Url::parse(u).unwrap()).is_err(), "{u}");
        }
    }

    #[test]
    fn event_streams_are_told_by_their_media_type() {
        let with = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::CONTENT_TYPE, v.parse().unwrap());
            h
        };
        assert!(is_event_stream(&with("text/event-stream")));
        assert!(is_event_stream(&with("Text/Event-Stream; charset=utf-8")));
        assert!(!is_event_stream(&with("application/json")));
        assert!(!is_event_stream(&reqwest::header::HeaderMap::new()));
    }
}
