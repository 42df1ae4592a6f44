//! The HTTP client that carries hosts' requests to remote MCP servers.
//!
//! hyper's pooled client over rustls with the webpki roots: keep-alive connections,
//! `TCP_NODELAY`, a connect timeout, and no redirects (a request carrying a token must not
//! follow one anywhere). It is hyper without reqwest's layers on purpose: this is the
//! proxy's hot path, and reqwest re-parses the URL and runs redirect and retry layers on
//! every request (measured: ~10% of the service's CPU per call). A server that the user's
//! proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) route through a
//! proxy is reached through reqwest instead, which speaks to proxies.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use oauth2::AccessToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle pooled connection is not reused after this long. Servers close idle connections
/// too (Node's default: after 5 s), and a request sent as the server closes one is reset
/// unanswered, and cannot be sent again (it may be a tools/call). Undici, the HTTP client of
/// Node and so of the SDK's hosts, uses 4 s for the same reason.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
const AGENT: &str = concat!("mcp-broker/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("the access token cannot be sent in a header")]
    BadToken,
    #[error("the server's URL is not valid")]
    BadUri,
    #[error(transparent)]
    Http(#[from] http::Error),
    #[error(transparent)]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    Proxied(#[from] reqwest::Error),
}

/// What proves the request is allowed: the server's access token, the headers that carry
/// its API key, or nothing for a server that asks for no sign-in.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Bearer(&'a AccessToken),
    Headers(&'a [(http::HeaderName, HeaderValue)]),
    None,
}

/// An upstream answer's body, from either client.
pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A pooled client for every upstream MCP server.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Which servers the user's proxy settings send through a proxy.
    proxies: Matcher,
    proxied: reqwest::Client,
}

impl Upstream {
    pub fn new() -> Result<Self, UpstreamError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| UpstreamError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(https);
        let proxied = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build()?;
        Ok(Self { client, proxies: Matcher::from_system(), proxied })
    }

    /// Send one request with `credential`; the answer's body streams.
    pub async fn send(&self, method: Method, uri: Uri, mut headers: HeaderMap, credential: Credential<'_>, body: Bytes) -> Result<Response<UpstreamBody>, UpstreamError> {
        match credential {
            Credential::Bearer(token) => {
                let mut auth = HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| UpstreamError::BadToken)?;
                auth.set_sensitive(true);
                headers.insert(AUTHORIZATION, auth);
            }
            Credential::Headers(pairs) => {
                for (name, value) in pairs {
                    headers.insert(name.clone(), value.clone());
                }
            }
            Credential::None => {}
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        if self.proxies.intercept(&uri).is_some() {
            let url = reqwest::Url::parse(&uri.to_string()).map_err(|_| UpstreamError::BadUri)?;
            let resp = self.proxied.request(method, url).headers(headers).body(body).send().await?;
            return Ok(http::Response::from(resp).map(|b| b.map_err(Into::into).boxed()));
        }
        let mut req = Request::builder().method(method).uri(uri).body(Full::new(body))?;
        *req.headers_mut() = headers;
        Ok(self.client.request(req).await?.map(|b| b.map_err(Into::into).boxed()))
    }
}
