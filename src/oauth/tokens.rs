//! Token sets: what the keychain holds for a server, when it is due for refresh, and how
//! a token response becomes one.
//!
//! A token set is written to the keychain as one entry, so a rotated refresh token and
//! its access token are stored together, before the new access token is ever used.

use std::time::Duration;

use oauth2::basic::BasicTokenResponse;
use oauth2::{AccessToken, RefreshToken, TokenResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secret::Secret;

/// The secrets of one server's grant. `Debug` is redacted by the `oauth2` newtypes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: AccessToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
}

impl TokenSet {
    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_secret(s: &Secret) -> Option<Self> {
        serde_json::from_str(s.expose()).ok()
    }
}

/// The non-secret facts of a fresh token response.
#[derive(Debug, Clone)]
pub struct Issued {
    pub tokens: TokenSet,
    pub issued_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    /// Scopes the AS says it granted (`None`: it did not say, so the request stands).
    pub scopes: Option<Vec<String>>,
}

/// The AS answered with a token type the broker cannot use as a Bearer token.
#[derive(Debug, thiserror::Error)]
#[error("the authorization server issued a {0:?} token; only Bearer tokens are supported")]
pub struct WrongTokenType(pub String);

impl Issued {
    /// Turn a token response into a token set. `previous_refresh` is kept when a refresh
    /// response carries no new refresh token (RFC 6749 §6: the old one stays valid).
    pub fn from_response(
        r: &BasicTokenResponse,
        previous_refresh: Option<RefreshToken>,
        now: OffsetDateTime,
    ) -> Result<Self, WrongTokenType> {
        let token_type = r.token_type().as_ref().to_ascii_lowercase();
        if token_type != "bearer" {
            return Err(WrongTokenType(r.token_type().as_ref().to_owned()));
        }
        let expires_at = r.expires_in().map(|d| now + clamp(d));
        Ok(Self {
            tokens: TokenSet {
                access_token: r.access_token().clone(),
                refresh_token: r.refresh_token().cloned().or(previous_refresh),
            },
            issued_at: now,
            expires_at,
            scopes: r.scopes().map(|s| s.iter().map(|x| x.to_string()).collect()),
        })
    }
}

/// A lifetime an AS claims, bounded to something sane (ten years).
fn clamp(d: Duration) -> time::Duration {
    time::Duration::seconds(d.as_secs().min(10 * 365 * 86_400) as i64)
}

/// Whether a token is due for refresh at `now`: within 60 s of expiry, or within a third of
/// its lifetime when that is shorter (so a 30 s token refreshes 10 s before it ends).
pub fn refresh_due(issued_at: Option<OffsetDateTime>, expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    let Some(exp) = expires_at else { return false };
    let margin = match issued_at {
        Some(iat) if exp > iat => time::Duration::seconds(60).min((exp - iat) / 3),
        _ => time::Duration::seconds(60),
    };
    now >= exp - margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn refresh_margin() {
        let iat = datetime!(2026-01-01 0:00 UTC);
        let hour = iat + time::Duration::hours(1);
        assert!(!refresh_due(Some(iat), Some(hour), hour - time::Duration::seconds(61)));
        assert!(refresh_due(Some(iat), Some(hour), hour - time::Duration::seconds(60)));
        let short = iat + time::Duration::seconds(30);
        assert!(!refresh_due(Some(iat), Some(short), iat + time::Duration::seconds(19)));
        assert!(refresh_due(Some(iat), Some(short), iat + time::Duration::seconds(20)));
        assert!(!refresh_due(Some(iat), None, hour));
        assert!(refresh_due(None, Some(hour), hour));
    }

    #[test]
    fn token_set_debug_is_redacted() {
        let t = TokenSet { access_token: AccessToken::new("at-secret".into()), refresh_token: Some(RefreshToken::new("rt-secret".into())) };
        let d = format!("{t:?}");
        assert!(!d.contains("secret"), "{d}");
        let back = TokenSet::from_secret(&t.to_secret()).unwrap();
        assert_eq!(back.access_token.secret(), "at-secret");
    }
}
