//! Discovery: from an MCP server's URL to its validated authorization server.
//!
//! 1. Ask the server without a token; a 401 carries a `Bearer` challenge, perhaps with
//!    `resource_metadata` and `scope` ([`www_authenticate`]).
//! 2. Fetch its Protected Resource Metadata and check that it is about this server
//!    ([`resource_metadata`], [`canonical`]).
//! 3. Fetch the authorization servers' metadata in the order listed, and take the first
//!    whose issuer, PKCE support and endpoints check out ([`auth_server`]).
//!
//! A server that answers 401 with a `Bearer` challenge and publishes no resource metadata at
//! all is taken for a 2025-03-26 one: its origin is its authorization server ([`legacy`]).
//!
//! Nothing here opens a browser or stores anything: a failure leaves no trace.

pub mod auth_server;
pub mod canonical;
pub mod legacy;
pub mod resource_metadata;
pub mod www_authenticate;

use oauth2::AccessToken;
use url::Url;

pub use auth_server::{AuthServerMetadata, MetadataError};
pub use canonical::ResourceUri;
pub use resource_metadata::ProtectedResourceMetadata;
pub use www_authenticate::BearerChallenge;

use crate::net::{require_secure, FetchError, HttpClient};
use crate::oauth::quirks::Quirks;

/// Everything discovery learned about one MCP server.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The URL requests go to.
    pub server: ResourceUri,
    /// The audience tokens are requested for (the PRM's `resource`).
    pub resource: ResourceUri,
    pub resource_metadata: ProtectedResourceMetadata,
    pub auth_server: AuthServerMetadata,
    /// The challenge from the unauthenticated request, if the server sent one.
    pub challenge: Option<BearerChallenge>,
    /// Whether the server asked for a token (it answered 401 or 403 without one). A server
    /// that lets the probe through may still publish metadata, and ask on a later request.
    pub asked: bool,
}

/// How a server refused a host's request for want of a token: a 401, and its `Bearer`
/// challenge if it sent one. Discovery that starts from it skips its own probe, and the
/// sign-in asks for the scopes this request was refused for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unauthorized {
    pub challenge: Option<BearerChallenge>,
}

impl Discovery {
    /// The issuer recorded for the RFC 9207 check (the metadata's own spelling).
    pub fn issuer(&self) -> &str {
        &self.auth_server.issuer
    }

    /// A discovery of `server` (its own resource) at `auth_server`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(server: &str, auth_server: AuthServerMetadata) -> Self {
        let uri = ResourceUri::parse(server).expect("a test URL");
        let resource_metadata = ProtectedResourceMetadata {
            resource: uri.as_canonical(),
            authorization_servers: vec![auth_server.issuer.clone()],
            scopes_supported: None,
            resource_name: None,
        };
        Self { server: uri.clone(), resource: uri, resource_metadata, auth_server, challenge: None, asked: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    InvalidServerUrl(#[from] canonical::CanonicalError),
    #[error("{server} does not ask for authorization (it answered {status} without a token) and publishes no protected resource metadata: there is nothing to sign in to, and hosts reach it through `mcp-broker connect URL` as it is")]
    NotProtected { server: String, status: u16 },
    #[error("found no protected resource metadata for {server} (tried {tried})")]
    NoResourceMetadata { server: String, tried: String },
    #[error("protected resource metadata at {url} {reason}")]
    ResourceMetadata { url: String, reason: String },
    #[error("the server does not list the authorization server {chosen} (--auth-server); it lists {listed}")]
    NotListed { chosen: String, listed: String },
    #[error("the authorization server {issuer:?} is not a valid issuer URL")]
    BadIssuer { issuer: String },
    #[error("found no authorization server metadata for issuer {issuer} (tried {tried})")]
    NoAuthServerMetadata { issuer: String, tried: String },
    #[error("authorization server metadata at {url} {source}")]
    AuthServer { url: String, source: MetadataError },
}

/// Run discovery for the server at `server_url`, starting with a probe.
pub async fn discover(http: &HttpClient, server_url: &str) -> Result<Discovery, DiscoveryError> {
    discover_from(http, server_url, None, &Quirks::default()).await
}

/// Run discovery for the server at `server_url`, from the 401 a request already got
/// (`refused`), else from a probe, as the server's settings say: `assume_s256` (AS metadata
/// that does not say whether it supports PKCE is taken to support S256) and `auth_server`
/// (which of the authorization servers the resource lists to use).
pub async fn discover_from(
    http: &HttpClient,
    server_url: &str,
    refused: Option<&Unauthorized>,
    quirks: &Quirks,
) -> Result<Discovery, DiscoveryError> {
    let assume_s256 = quirks.assume_s256;
    let server = ResourceUri::parse(server_url)?;
    require_secure(server.url())?;
    let (status, challenge) = match refused {
        Some(r) => (401, r.challenge.clone()),
        None => probe(http, &server).await?,
    };
    let (resource_metadata, resource, auth_server) =
        match fetch_resource_metadata(http, &server, challenge.as_ref(), status).await {
            Ok((prm, resource)) => {
                let issuers = chosen_auth_servers(&prm, quirks.auth_server.as_deref())?;
                let auth_server = first_valid_auth_server(http, &issuers, assume_s256).await?;
                (prm, resource, auth_server)
            }
            Err(DiscoveryError::NoResourceMetadata { .. }) if names_no_metadata(challenge.as_ref()) => {
                let (prm, auth_server) = discover_legacy(http, &server, assume_s256).await?;
                (prm, server.clone(), auth_server)
            }
            Err(e) => return Err(e),
        };
    Ok(Discovery { server, resource, resource_metadata, auth_server, challenge, asked: matches!(status, 401 | 403) })
}

/// True when the server sent a `Bearer` challenge that points at no resource metadata: only
/// then may it be a 2025-03-26 one (a 401 with no challenge at all is not OAuth).
fn names_no_metadata(challenge: Option<&BearerChallenge>) -> bool {
    challenge.is_some_and(|c| c.resource_metadata.is_none())
}

/// 2025-03-26 discovery: AS metadata at the server's base URL, else the default endpoints.
async fn discover_legacy(
    http: &HttpClient,
    server: &ResourceUri,
    assume_s256: bool,
) -> Result<(ProtectedResourceMetadata, AuthServerMetadata), DiscoveryError> {
    let base = legacy::base_url(server);
    let auth_server = match fetch_auth_server(http, &base, assume_s256).await {
        Ok(m) => m,
        Err(DiscoveryError::NoAuthServerMetadata { .. }) => legacy::default_auth_server(&base)
            .map_err(|_| DiscoveryError::BadIssuer { issuer: base.clone() })?,
        Err(e) => return Err(e),
    };
    Ok((legacy::implied_resource_metadata(server, &base), auth_server))
}

/// The first request: an MCP `initialize`, what any host would send first. Its `_meta`
/// says the same in 2026-07-28's terms (protocol version, capabilities, client info on
/// every request), which earlier servers ignore.
const PROBE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"#,
    r#""clientInfo":{"name":"mcp-broker","version":""#, env!("CARGO_PKG_VERSION"), r#""},"#,
    r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{},"#,
    r#""io.modelcontextprotocol/clientInfo":{"name":"mcp-broker","version":""#, env!("CARGO_PKG_VERSION"), r#""}}}}"#,
);

/// The protocol revision the probe speaks (and says in `MCP-Protocol-Version`, which
/// 2026-07-28 servers require on every request, the first one included).
const PROBE_VERSION: &str = "2025-11-25";

/// Send the [`PROBE`] to `server`: unauthenticated for discovery, or with `token` to see
/// whether the server accepts it. Only the status and headers are read: a server that
/// answers with an open event stream does not hold discovery up.
pub async fn send_probe(
    http: &HttpClient,
    server: &Url,
    token: Option<&AccessToken>,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap), FetchError> {
    http.send_head(server, |c| {
        let req = c
            .post(server.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROBE_VERSION)
            .header("mcp-method", "initialize")
            .body(PROBE);
        match token {
            Some(t) => req.bearer_auth(t.secret()),
            None => req,
        }
    })
    .await
}

/// Send the unauthenticated MCP request and read the challenge, if any.
async fn probe(http: &HttpClient, server: &ResourceUri) -> Result<(u16, Option<BearerChallenge>), DiscoveryError> {
    let (status, headers) = send_probe(http, server.url(), None).await?;
    let values = headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok());
    Ok((status.as_u16(), www_authenticate::bearer_challenge(values)))
}

/// The server's protected resource metadata: from the challenge's `resource_metadata` URL
/// when it names one, else (or when that one fails) from the well-known URLs (RFC 9728 §3).
/// A URL that answers with an error, or with an event stream, is passed over.
async fn fetch_resource_metadata(
    http: &HttpClient,
    server: &ResourceUri,
    challenge: Option<&BearerChallenge>,
    status: u16,
) -> Result<(ProtectedResourceMetadata, ResourceUri), DiscoveryError> {
    let mut candidates = Vec::new();
    if let Some(u) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        let named = Url::parse(u)
            .map_err(|_| DiscoveryError::ResourceMetadata { url: u.to_owned(), reason: "is not a valid URL".into() })?;
        candidates.push(named);
    }
    for url in resource_metadata::well_known_urls(server.url()) {
        if !candidates.contains(&url) {
            candidates.push(url);
        }
    }
    let mut first_error = None;
    for url in &candidates {
        let r = match http.get(url).await {
            Ok(r) if r.status.is_success() => r,
            Ok(_) | Err(FetchError::EventStream { .. }) => continue,
            Err(e) => {
                first_error.get_or_insert(DiscoveryError::Fetch(e));
                continue;
            }
        };
        match ProtectedResourceMetadata::validate_for(&r.body, server) {
            Ok(found) => return Ok(found),
            Err(reason) => {
                first_error.get_or_insert(DiscoveryError::ResourceMetadata { url: url.to_string(), reason });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if !matches!(status, 401 | 403) {
        return Err(DiscoveryError::NotProtected { server: server.to_string(), status });
    }
    Err(DiscoveryError::NoResourceMetadata { server: server.to_string(), tried: join(&candidates) })
}

/// The authorization servers to try: the one the user chose (it must be listed), else all.
fn chosen_auth_servers(prm: &ProtectedResourceMetadata, chosen: Option<&str>) -> Result<Vec<String>, DiscoveryError> {
    let Some(chosen) = chosen else { return Ok(prm.authorization_servers.clone()) };
    match prm.authorization_servers.iter().find(|a| a.trim_end_matches('/') == chosen.trim_end_matches('/')) {
        Some(listed) => Ok(vec![listed.clone()]),
        None => Err(DiscoveryError::NotListed { chosen: chosen.to_owned(), listed: prm.authorization_servers.join(", ") }),
    }
}

/// At most this many of a server's `authorization_servers` are tried: a hostile list of a
/// thousand costs no more than a short one.
const MAX_AUTH_SERVERS: usize = 4;

/// The first of `issuers` (the PRM's `authorization_servers`, in its order) whose metadata
/// validates; when none does, the first one's error.
async fn first_valid_auth_server(http: &HttpClient, issuers: &[String], assume_s256: bool) -> Result<AuthServerMetadata, DiscoveryError> {
    let mut first_error = None;
    for issuer in issuers.iter().take(MAX_AUTH_SERVERS) {
        match fetch_auth_server(http, issuer, assume_s256).await {
            Ok(m) => return Ok(m),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| DiscoveryError::NoAuthServerMetadata { issuer: "(none named)".into(), tried: String::new() }))
}

async fn fetch_auth_server(http: &HttpClient, issuer: &str, assume_s256: bool) -> Result<AuthServerMetadata, DiscoveryError> {
    let bad = || DiscoveryError::BadIssuer { issuer: issuer.to_owned() };
    let issuer_url = Url::parse(issuer).map_err(|_| bad())?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(bad());
    }
    require_secure(&issuer_url)?;
    let candidates = auth_server::metadata_urls(&issuer_url);
    for url in &candidates {
        let r = match http.get(url).await {
            Ok(r) if r.status.is_success() => r,
            Ok(_) | Err(FetchError::EventStream { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        return AuthServerMetadata::validate_as(&r.body, issuer, assume_s256)
            .map_err(|source| DiscoveryError::AuthServer { url: url.to_string(), source });
    }
    Err(DiscoveryError::NoAuthServerMetadata { issuer: issuer.to_owned(), tried: join(&candidates) })
}

fn join(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_json_that_says_its_version_twice() {
        let v: serde_json::Value = serde_json::from_str(PROBE).expect("the probe is JSON");
        assert_eq!(v["params"]["protocolVersion"], PROBE_VERSION);
        assert_eq!(v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], PROBE_VERSION);
        assert_eq!(v["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"], "mcp-broker");
    }
}
