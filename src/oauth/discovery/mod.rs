//! Discovery: from an MCP server's URL to its validated authorization server.
//!
//! 1. Ask the server without a token; a 401 carries a `Bearer` challenge, perhaps with
//!    `resource_metadata` and `scope` ([`www_authenticate`]).
//! 2. Fetch its Protected Resource Metadata and check that it is about this server
//!    ([`resource_metadata`], [`canonical`]).
//! 3. Fetch the first authorization server's metadata and check its issuer, PKCE support and
//!    endpoints ([`auth_server`]).
//!
//! Nothing here opens a browser or stores anything: a failure leaves no trace.

pub mod auth_server;
pub mod canonical;
pub mod resource_metadata;
pub mod www_authenticate;

use oauth2::AccessToken;
use url::Url;

pub use auth_server::{AuthServerMetadata, MetadataError};
pub use canonical::ResourceUri;
pub use resource_metadata::ProtectedResourceMetadata;
pub use www_authenticate::BearerChallenge;

use crate::net::{require_secure, FetchError, Fetched, HttpClient};

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
        Self { server: uri.clone(), resource: uri, resource_metadata, auth_server, challenge: None }
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
    #[error("the authorization server {issuer:?} is not a valid issuer URL")]
    BadIssuer { issuer: String },
    #[error("found no authorization server metadata for issuer {issuer} (tried {tried})")]
    NoAuthServerMetadata { issuer: String, tried: String },
    #[error("authorization server metadata at {url} {source}")]
    AuthServer { url: String, source: MetadataError },
}

/// Run discovery for the server at `server_url`.
pub async fn discover(http: &HttpClient, server_url: &str) -> Result<Discovery, DiscoveryError> {
    let server = ResourceUri::parse(server_url)?;
    require_secure(server.url())?;
    let (status, challenge) = probe(http, &server).await?;
    let (resource_metadata, resource) = fetch_resource_metadata(http, &server, challenge.as_ref(), status).await?;
    let auth_server = fetch_auth_server(http, &resource_metadata.authorization_servers[0]).await?;
    Ok(Discovery { server, resource, resource_metadata, auth_server, challenge })
}

/// The first request: an MCP `initialize`, what any host would send first.
const PROBE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcp-broker","version":"0"}}}"#;

/// Send the [`PROBE`] to `server`: unauthenticated for discovery, or with `token` to see
/// whether the server accepts it.
pub async fn send_probe(http: &HttpClient, server: &Url, token: Option<&AccessToken>) -> Result<Fetched, FetchError> {
    http.send_direct(server, |c| {
        let req = c
            .post(server.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
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
    let r = send_probe(http, server.url(), None).await?;
    let values = r.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok());
    Ok((r.status.as_u16(), www_authenticate::bearer_challenge(values)))
}

async fn fetch_resource_metadata(
    http: &HttpClient,
    server: &ResourceUri,
    challenge: Option<&BearerChallenge>,
    status: u16,
) -> Result<(ProtectedResourceMetadata, ResourceUri), DiscoveryError> {
    let candidates = match challenge.and_then(|c| c.resource_metadata.as_deref()) {
        Some(u) => vec![Url::parse(u).map_err(|_| DiscoveryError::ResourceMetadata {
            url: u.to_owned(),
            reason: "is not a valid URL".into(),
        })?],
        None => resource_metadata::well_known_urls(server.url()),
    };
    for url in &candidates {
        let r = http.get(url).await?;
        if !r.status.is_success() {
            continue;
        }
        return ProtectedResourceMetadata::validate_for(&r.body, server)
            .map_err(|reason| DiscoveryError::ResourceMetadata { url: url.to_string(), reason });
    }
    if !matches!(status, 401 | 403) {
        return Err(DiscoveryError::NotProtected { server: server.to_string(), status });
    }
    Err(DiscoveryError::NoResourceMetadata { server: server.to_string(), tried: join(&candidates) })
}

async fn fetch_auth_server(http: &HttpClient, issuer: &str) -> Result<AuthServerMetadata, DiscoveryError> {
    let bad = || DiscoveryError::BadIssuer { issuer: issuer.to_owned() };
    let issuer_url = Url::parse(issuer).map_err(|_| bad())?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(bad());
    }
    require_secure(&issuer_url)?;
    let candidates = auth_server::metadata_urls(&issuer_url);
    for url in &candidates {
        let r = http.get(url).await?;
        if !r.status.is_success() {
            continue;
        }
        return AuthServerMetadata::validate(&r.body, issuer)
            .map_err(|source| DiscoveryError::AuthServer { url: url.to_string(), source });
    }
    Err(DiscoveryError::NoAuthServerMetadata { issuer: issuer.to_owned(), tried: join(&candidates) })
}

fn join(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}
