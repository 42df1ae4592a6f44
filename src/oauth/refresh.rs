//! Refreshing a grant (RFC 6749 §6): the refresh token for a new access token, for the same
//! audience (RFC 8707 `resource`). A response without a new refresh token keeps the old one.
//! One request; whether and when to retry is the broker's decision.

use oauth2::RefreshToken;
use time::OffsetDateTime;

use crate::net::HttpClient;
use crate::oauth::client::{Credentials, Endpoints};
use crate::oauth::login::TokenError;
use crate::oauth::tokens::Issued;

/// One refresh request at `endpoints.token`.
pub async fn refresh(
    http: &HttpClient,
    endpoints: &Endpoints,
    credentials: &Credentials,
    token: &RefreshToken,
    resource: Option<&str>,
) -> Result<Issued, TokenError> {
    let client = credentials.oauth_client(endpoints);
    let mut request = client.exchange_refresh_token(token);
    if let Some(r) = resource {
        request = request.add_extra_param("resource", r.to_owned());
    }
    let response = request.request_async(http).await?;
    Ok(Issued::from_response(&response, Some(token.clone()), OffsetDateTime::now_utc())?)
}
