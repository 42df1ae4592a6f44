//! Which scopes to ask for (MCP "Scope Selection Strategy" and "Step-Up Authorization").

use crate::oauth::discovery::{AuthServerMetadata, BearerChallenge, ProtectedResourceMetadata};

/// Initial scopes: the challenge's `scope` if given, else the PRM's `scopes_supported`,
/// else none (the `scope` parameter is then omitted). `offline_access` is added when the
/// AS lists it and something else is requested, so that a refresh token may be issued.
pub fn select(
    challenge: Option<&BearerChallenge>,
    prm: &ProtectedResourceMetadata,
    auth_server: &AuthServerMetadata,
) -> Vec<String> {
    let challenged = challenge.map(BearerChallenge::scopes).unwrap_or_default();
    let mut scopes = if challenged.is_empty() { prm.scopes_supported.clone().unwrap_or_default() } else { challenged };
    if !scopes.is_empty() && auth_server.offers_offline_access() {
        scopes = union(&scopes, &["offline_access".to_owned()]);
    }
    scopes
}

/// The union of two scope lists, in first-seen order, without duplicates.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(a.len() + b.len());
    for s in a.iter().chain(b) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prm(scopes: Option<&[&str]>) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: "https://a.example/mcp".into(),
            authorization_servers: vec!["https://as.example".into()],
            scopes_supported: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            resource_name: None,
        }
    }

    fn asm(scopes: &[&str]) -> AuthServerMetadata {
        let doc = serde_json::json!({
            "issuer": "https://as.example", "authorization_endpoint": "https://as.example/a",
            "token_endpoint": "https://as.example/t", "code_challenge_methods_supported": ["S256"],
            "scopes_supported": scopes,
        });
        serde_json::from_value(doc).unwrap()
    }

    fn challenge(scope: &str) -> BearerChallenge {
        BearerChallenge { scope: Some(scope.into()), ..Default::default() }
    }

    #[test]
    fn challenge_wins_then_prm_then_none() {
        let a = asm(&[]);
        assert_eq!(select(Some(&challenge("files:read")), &prm(Some(&["x", "y"])), &a), ["files:read"]);
        assert_eq!(select(Some(&BearerChallenge::default()), &prm(Some(&["x", "y"])), &a), ["x", "y"]);
        assert!(select(None, &prm(None), &a).is_empty());
    }

    #[test]
    fn offline_access_only_with_other_scopes() {
        let a = asm(&["offline_access", "x"]);
        assert_eq!(select(None, &prm(Some(&["x"])), &a), ["x", "offline_access"]);
        assert!(select(None, &prm(None), &a).is_empty());
    }

    #[test]
    fn union_keeps_order_and_dedupes() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(union(&s(&["a", "b"]), &s(&["b", "c"])), ["a", "b", "c"]);
    }
}
