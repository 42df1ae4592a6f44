//! Importing a grant: against a real (loopback) MCP server and its metadata for discovery,
//! the scripted authorization server for the proving refresh, and the in-memory keychain.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::*;
use crate::broker::import::{ImportRefused, ImportedClient, ImportedTokens};

/// The protected resource metadata the loopback server publishes.
#[derive(Serialize)]
struct Prm {
    resource: String,
    authorization_servers: Vec<String>,
}

/// The authorization server metadata it publishes (the scripted AS answers the refreshes).
#[derive(Serialize)]
struct AsMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    code_challenge_methods_supported: Vec<String>,
}

/// An MCP server on loopback that accepts the access token `good` and publishes metadata
/// naming itself as its authorization server. Returns its base URL.
async fn server() -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/mcp", post(mcp))
        .route("/.well-known/oauth-protected-resource/mcp", get(prm))
        .route("/.well-known/oauth-authorization-server", get(as_metadata))
        .with_state(base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn mcp(State(base): State<String>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good") {
        return (StatusCode::OK, "{}").into_response();
    }
    let challenge = format!(r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#);
    (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response()
}

async fn prm(State(base): State<String>) -> Json<Prm> {
    Json(Prm { resource: format!("{base}/mcp"), authorization_servers: vec![base] })
}

async fn as_metadata(State(base): State<String>) -> Json<AsMetadata> {
    Json(AsMetadata {
        authorization_endpoint: format!("{base}/authorize"),
        token_endpoint: format!("{base}/token"),
        code_challenge_methods_supported: vec!["S256".into()],
        issuer: base,
    })
}

fn imported_client(issuer: Option<&str>) -> ImportedClient {
    ImportedClient { client_id: "mr-1".into(), client_secret: None, auth_method: Some("none".into()), issuer: issuer.map(str::to_owned) }
}

fn imported_tokens(at: &str, rt: Option<&str>) -> ImportedTokens {
    ImportedTokens {
        access_token: AccessToken::new(at.into()),
        refresh_token: rt.map(|r| RefreshToken::new(r.into())),
        token_type: "bearer".into(),
        expires_at: Some(OffsetDateTime::now_utc() + time::Duration::minutes(30)),
        scopes: vec!["read".into()],
        issuer: None,
    }
}

impl Fixture {
    fn nothing_stored(&self) {
        assert_eq!(self.secrets.accounts(), Vec::<String>::new());
        let (servers, clients) = self.broker.vault.store.with(|r| (r.servers.len(), r.clients.len())).unwrap();
        assert_eq!((servers, clients), (0, 0));
    }
}

#[tokio::test]
async fn an_import_is_stored_and_proved_by_one_refresh_whose_rotated_token_is_kept() {
    let (f, base) = (fixture(), server().await);
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    let url = format!("{base}/mcp");
    let record = f.broker.import(Some("imp".into()), &url, imported_client(Some(&base)), imported_tokens("at-1", Some("rt-1"))).await.unwrap();
    assert_eq!((record.name.as_str(), record.state, record.client_id.as_str()), ("imp", ServerState::SignedIn, "mr-1"));
    assert_eq!(f.script.asked(), [Asked::Refresh { client_id: "mr-1".into(), refresh_token: "rt-1".into(), resource: Some(url) }]);
    assert_eq!(f.stored("imp").refresh_token.unwrap().secret(), "rt-2");
    let client = f.broker.stored_client(&record.client_key()).unwrap().unwrap();
    assert_eq!((client.client.kind, client.client.issuer.as_str()), (RegistrationKind::Dynamic, base.as_str()));
    assert!(f.broker.reusable_client("imp", &base).unwrap().is_none(), "a new sign-in registers its own client, for the broker's redirect URI");
    let again = f.broker.import(Some("imp".into()), &record.url, imported_client(None), imported_tokens("at-1", Some("rt-1"))).await;
    assert!(matches!(again, Err(Error::Import { reason: ImportRefused::AlreadySignedIn, .. })), "{again:?}");
    assert_eq!(f.script.asked().len(), 1, "a second import spends nothing");
}

#[tokio::test]
async fn a_refused_refresh_leaves_nothing_stored() {
    let (f, base) = (fixture(), server().await);
    f.script.answer(Err(TokenError::InvalidClient("unknown client".into())));
    let r = f.broker.import(None, &format!("{base}/mcp"), imported_client(None), imported_tokens("at-1", Some("rt-1"))).await;
    assert!(matches!(r, Err(Error::Refresh { source: TokenError::InvalidClient(_), .. })), "{r:?}");
    f.nothing_stored();
}

#[tokio::test]
async fn without_a_refresh_token_the_server_must_accept_the_access_token() {
    let (f, base) = (fixture(), server().await);
    let url = format!("{base}/mcp");
    let r = f.broker.import(Some("imp".into()), &url, imported_client(None), imported_tokens("stale", None)).await;
    assert!(matches!(&r, Err(Error::Import { reason: ImportRefused::Rejected(why), .. }) if why == "HTTP 401"), "{r:?}");
    f.nothing_stored();
    let record = f.broker.import(Some("imp".into()), &url, imported_client(None), imported_tokens("good", None)).await.unwrap();
    assert_eq!((record.state, record.has_refresh_token), (ServerState::SignedIn, false));
    assert_eq!(f.stored("imp").access_token.secret(), "good");
    assert!(f.script.asked().is_empty());
}

#[tokio::test]
async fn a_grant_of_another_authorization_server_or_not_bearer_is_refused_before_anything_is_stored() {
    let (f, base) = (fixture(), server().await);
    let url = format!("{base}/mcp");
    let r = f.broker.import(None, &url, imported_client(Some("https://elsewhere.example")), imported_tokens("good", Some("rt-1"))).await;
    assert!(matches!(r, Err(Error::Import { reason: ImportRefused::OtherIssuer { what: "client", .. }, .. })), "{r:?}");
    let mut tokens = imported_tokens("good", None);
    tokens.issuer = Some(format!("{base}/"));
    tokens.token_type = "DPoP".into();
    let r = f.broker.import(None, &url, imported_client(None), tokens).await;
    assert!(matches!(r, Err(Error::Import { reason: ImportRefused::NotBearer(_), .. })), "a trailing slash is the same issuer: {r:?}");
    let mut client = imported_client(None);
    client.auth_method = Some("private_key_jwt".into());
    let r = f.broker.import(None, &url, client, imported_tokens("good", None)).await;
    assert!(matches!(r, Err(Error::Import { reason: ImportRefused::AuthMethod(_), .. })), "{r:?}");
    f.nothing_stored();
    assert!(f.script.asked().is_empty());
}

#[tokio::test]
async fn a_failed_import_puts_back_what_the_name_held_before() {
    let (f, base) = (fixture(), server().await);
    let url = format!("{base}/mcp");
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    f.broker.import(Some("imp".into()), &url, imported_client(None), imported_tokens("at-1", Some("rt-1"))).await.unwrap();
    f.broker.mark_needs_login("imp", "expired").unwrap();
    let before = (f.broker.server("imp").unwrap(), f.stored("imp").access_token.secret().clone());
    f.script.answer(Err(TokenError::InvalidGrant("reused".into())));
    assert!(f.broker.import(Some("imp".into()), &url, imported_client(None), imported_tokens("at-9", Some("rt-9"))).await.is_err());
    assert_eq!((f.broker.server("imp").unwrap(), f.stored("imp").access_token.secret().clone()), before);
}
