//! What the broker asks of an authorization server once a server is signed in: a refresh
//! and a revocation. A trait so the token lifecycle is unit-tested against a scripted
//! authorization server; the real one is [`HttpClient`] through [`crate::oauth`].

use futures_util::future::BoxFuture;
use oauth2::RefreshToken;
use url::Url;

use crate::net::HttpClient;
use crate::oauth::client::{Credentials, Endpoints};
use crate::oauth::login::TokenError;
use crate::oauth::tokens::Issued;
use crate::oauth::{refresh, revocation};

/// The token and revocation endpoints of the authorization servers.
pub trait AuthServer: Send + Sync {
    /// One RFC 6749 §6 refresh request for `resource` (`None`: the AS refuses the parameter).
    fn refresh<'a>(
        &'a self,
        endpoints: &'a Endpoints,
        credentials: &'a Credentials,
        token: &'a RefreshToken,
        resource: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Issued, TokenError>>;

    /// RFC 7009 revocation of one token (`hint`: `refresh_token` or `access_token`).
    fn revoke<'a>(&'a self, endpoint: &'a Url, credentials: &'a Credentials, token: &'a str, hint: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

impl AuthServer for HttpClient {
    fn refresh<'a>(
        &'a self,
        endpoints: &'a Endpoints,
        credentials: &'a Credentials,
        token: &'a RefreshToken,
        resource: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Issued, TokenError>> {
        Box::pin(refresh::refresh(self, endpoints, credentials, token, resource))
    }

    fn revoke<'a>(&'a self, endpoint: &'a Url, credentials: &'a Credentials, token: &'a str, hint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(revocation::revoke(self, endpoint, credentials, token, hint))
    }
}
