//! The grant lifecycle against a scripted authorization server and an in-memory keychain.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use oauth2::{AccessToken, RefreshToken};
use time::OffsetDateTime;
use url::Url;

mod import;

use super::network::AuthServer;
use super::*;
use crate::oauth::client::{Client, Credentials, Endpoints, RegistrationKind, TokenAuthMethod};
use crate::oauth::tokens::{Issued, TokenSet};
use crate::secret::Secret;
use crate::vault::{ClientRecord, MemorySecrets, Placement, SecretStore, ServerState, StoredAuthServer};

const ISSUER: &str = "https://as.example";

/// What the scripted AS was asked, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Refresh { client_id: String, refresh_token: String, resource: Option<String> },
    Revoke { client_id: String, token: String, hint: String },
}

#[derive(Default)]
struct ScriptedAs {
    asked: Mutex<Vec<Asked>>,
    refresh: Mutex<VecDeque<Result<Issued, TokenError>>>,
    revoke_fails: Mutex<Option<String>>,
}

impl ScriptedAs {
    fn answer(&self, r: Result<Issued, TokenError>) {
        self.refresh.lock().unwrap().push_back(r);
    }
    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

impl AuthServer for ScriptedAs {
    fn refresh<'a>(&'a self, _: &'a Endpoints, c: &'a Credentials, token: &'a RefreshToken, resource: Option<&'a str>) -> BoxFuture<'a, Result<Issued, TokenError>> {
        Box::pin(async move {
            self.asked.lock().unwrap().push(Asked::Refresh {
                client_id: c.client.client_id.clone(),
                refresh_token: token.secret().clone(),
                resource: resource.map(str::to_owned),
            });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await; // let others pile up
            let mut answer = self.refresh.lock().unwrap().pop_front().unwrap_or_else(|| Err(TokenError::Refused("unscripted".into())));
            // As `Issued::from_response` does: no new refresh token keeps the presented one.
            if let Ok(i) = &mut answer {
                i.tokens.refresh_token.get_or_insert_with(|| token.clone());
            }
            answer
        })
    }

    fn revoke<'a>(&'a self, _: &'a Url, c: &'a Credentials, token: &'a str, hint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.asked.lock().unwrap().push(Asked::Revoke { client_id: c.client.client_id.clone(), token: token.to_owned(), hint: hint.to_owned() });
            match self.revoke_fails.lock().unwrap().clone() {
                Some(why) => Err(why),
                None => Ok(()),
            }
        })
    }
}

struct Fixture {
    broker: Broker,
    secrets: Arc<MemorySecrets>,
    script: Arc<ScriptedAs>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = vault::Home::at(dir.path()).unwrap();
    let secrets = Arc::new(MemorySecrets::default());
    let script = Arc::new(ScriptedAs::default());
    let vault = Vault::with_secrets(home, secrets.clone()).unwrap();
    let broker = Broker::new(vault, HttpClient::new().unwrap(), script.clone());
    Fixture { broker, secrets, script, _dir: dir }
}

fn issued(at: &str, rt: Option<&str>, lifetime_s: i64) -> Issued {
    let now = OffsetDateTime::now_utc();
    Issued {
        tokens: TokenSet { access_token: AccessToken::new(at.into()), refresh_token: rt.map(|r| RefreshToken::new(r.into())) },
        issued_at: now,
        expires_at: Some(now + time::Duration::seconds(lifetime_s)),
        scopes: None,
    }
}

fn client(id: &str, kind: RegistrationKind, secret: Option<&str>) -> Credentials {
    let auth_method = if secret.is_some() { TokenAuthMethod::ClientSecretBasic } else { TokenAuthMethod::None };
    Credentials { client: Client { issuer: ISSUER.into(), client_id: id.into(), kind, auth_method }, secret: secret.map(Secret::new) }
}

impl Fixture {
    /// A server signed in with `creds`, holding `tokens` (a lifetime ≤ 0 makes it due).
    fn seed(&self, name: &str, creds: &Credentials, tokens: Issued) {
        let b = &self.broker;
        b.keep_client_secret(creds).unwrap();
        b.vault.secrets.set(&vault::server_account(name), &tokens.tokens.to_secret()).unwrap();
        let auth_server = StoredAuthServer {
            issuer: ISSUER.into(),
            authorization_endpoint: Url::parse("https://as.example/authorize").unwrap(),
            token_endpoint: Url::parse("https://as.example/token").unwrap(),
            revocation_endpoint: Some(Url::parse("https://as.example/revoke").unwrap()),
        };
        let at = Placement {
            name: name.into(),
            url: format!("https://{name}.example/mcp"),
            resource: format!("https://{name}.example/mcp"),
            client: creds.client.key(),
            auth_server,
            quirks: Default::default(),
        };
        let record = ServerRecord::signed_in(at, &tokens, &["read".into()], None);
        let client = ClientRecord::new(&creds.client, creds.secret.is_some(), OffsetDateTime::now_utc());
        b.vault.store.update(|r| {
            r.insert_client(client);
            r.servers.insert(name.into(), record);
        })
        .unwrap();
    }

    fn stored(&self, name: &str) -> TokenSet {
        TokenSet::from_secret(&self.secrets.get(&vault::server_account(name)).unwrap().unwrap()).unwrap()
    }
}

fn dyn_client() -> Credentials {
    client("dyn-1", RegistrationKind::Dynamic, None)
}

#[tokio::test]
async fn a_fresh_token_is_served_from_memory() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 3600));
    assert_eq!(f.broker.access_token("a").await.unwrap().secret(), "at-1");
    assert!(f.script.asked().is_empty());
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_the_new_access_token_is_used() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 0)));
    f.script.answer(Ok(issued("at-3", None, 3600)));
    assert_eq!(f.broker.access_token("a").await.unwrap().secret(), "at-2");
    assert_eq!(f.stored("a").refresh_token.unwrap().secret(), "rt-2");
    // The next refresh presents the rotated token, never the spent one; a response
    // without a refresh token keeps the last one.
    assert_eq!(f.broker.access_token("a").await.unwrap().secret(), "at-3");
    let presented: Vec<_> = f.script.asked().into_iter().map(|a| match a { Asked::Refresh { refresh_token, .. } => refresh_token, other => panic!("{other:?}") }).collect();
    assert_eq!(presented, ["rt-1", "rt-2"]);
    assert_eq!(f.stored("a").refresh_token.unwrap().secret(), "rt-2");
    assert_eq!(f.broker.server("a").unwrap().state, ServerState::SignedIn);
}

#[tokio::test]
async fn a_refresh_asks_for_the_servers_own_audience() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    f.broker.refresh("a").await.unwrap();
    assert!(matches!(&f.script.asked()[0], Asked::Refresh { resource, .. } if resource.as_deref() == Some("https://a.example/mcp")));
}

#[tokio::test]
async fn concurrent_callers_with_a_due_token_cause_one_refresh() {
    let f = Arc::new(fixture());
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    let calls: Vec<_> = (0..16).map(|_| {
        let f = f.clone();
        tokio::spawn(async move { f.broker.access_token("a").await.map(|t| t.secret().clone()) })
    }).collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), "at-2");
    }
    assert_eq!(f.script.asked().len(), 1);
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_for_all_who_saw_it() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 3600));
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    let rejected = AccessToken::new("at-1".into());
    assert_eq!(f.broker.refresh_after_rejection("a", &rejected).await.unwrap().secret(), "at-2");
    assert_eq!(f.broker.refresh_after_rejection("a", &rejected).await.unwrap().secret(), "at-2");
    assert_eq!(f.script.asked().len(), 1);
}

#[tokio::test]
async fn invalid_grant_needs_a_new_sign_in_and_keeps_the_metadata() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    let before = f.broker.server("a").unwrap();
    f.script.answer(Err(TokenError::InvalidGrant("revoked".into())));
    let e = f.broker.access_token("a").await.unwrap_err();
    assert!(matches!(e, Error::Refresh { source: TokenError::InvalidGrant(_), .. }), "{e}");
    let after = f.broker.server("a").unwrap();
    assert_eq!(after.state, ServerState::NeedsLogin);
    assert!(after.last_error.as_deref().unwrap().contains("revoked"));
    assert_eq!((&after.url, &after.resource, &after.client_id, &after.auth_server, &after.scopes), (&before.url, &before.resource, &before.client_id, &before.auth_server, &before.scopes));
    assert!(f.broker.stored_client(&before.client_key()).unwrap().is_some(), "the client stays");
    assert!(matches!(f.broker.access_token("a").await, Err(Error::NotSignedIn(_))));
    assert_eq!(f.script.asked().len(), 1, "a dead grant is not retried");
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_and_nothing_is_deleted() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    for _ in 0..2 {
        f.script.answer(Err(TokenError::Transient("HTTP 503".into())));
    }
    f.script.answer(Ok(issued("at-2", Some("rt-2"), 3600)));
    assert_eq!(f.broker.refresh("a").await.unwrap().tokens.access_token.secret(), "at-2");
    assert_eq!(f.script.asked().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_as_that_stays_down_leaves_the_grant_as_it_was() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    for _ in 0..4 {
        f.script.answer(Err(TokenError::Transient("HTTP 503".into())));
    }
    assert!(matches!(f.broker.refresh("a").await, Err(Error::Refresh { source: TokenError::Transient(_), .. })));
    assert_eq!(f.script.asked().len(), 4, "one try and three retries");
    let r = f.broker.server("a").unwrap();
    assert_eq!(r.state, ServerState::SignedIn);
    assert!(r.last_error.unwrap().contains("503"));
    assert_eq!(f.stored("a").refresh_token.unwrap().secret(), "rt-1");
}

#[tokio::test]
async fn invalid_client_forgets_a_dynamic_client_so_the_next_sign_in_registers_anew() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    f.script.answer(Err(TokenError::InvalidClient("unknown client".into())));
    assert!(f.broker.refresh("a").await.is_err());
    assert_eq!(f.broker.server("a").unwrap().state, ServerState::NeedsLogin);
    assert!(f.broker.stored_client(&dyn_client().client.key()).unwrap().is_none());
    assert!(f.broker.reusable_client("a", ISSUER).unwrap().is_none());
}

#[tokio::test]
async fn invalid_client_keeps_a_pre_registered_client() {
    let f = fixture();
    let pre = client("pre-1", RegistrationKind::PreRegistered, Some("s3cret"));
    f.seed("a", &pre, issued("at-1", Some("rt-1"), 0));
    f.script.answer(Err(TokenError::InvalidClient("bad secret".into())));
    assert!(f.broker.refresh("a").await.is_err());
    assert_eq!(f.broker.server("a").unwrap().state, ServerState::NeedsLogin);
    let kept = f.broker.stored_client(&pre.client.key()).unwrap().unwrap();
    assert_eq!(kept.secret.unwrap().expose(), "s3cret");
}

#[tokio::test]
async fn no_refresh_token_means_a_new_sign_in() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", None, 0));
    assert!(matches!(f.broker.access_token("a").await, Err(Error::NotSignedIn(_))));
    assert_eq!(f.broker.server("a").unwrap().state, ServerState::NeedsLogin);
    assert!(f.script.asked().is_empty());
}

#[tokio::test]
async fn a_locked_keychain_stops_a_refresh_before_the_refresh_token_is_spent() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 0));
    f.secrets.lock(true);
    assert!(matches!(f.broker.refresh("a").await, Err(Error::Vault(_))));
    assert!(f.script.asked().is_empty());
    let r = f.broker.server("a").unwrap();
    assert_eq!(r.state, ServerState::SignedIn);
    assert!(r.last_error.unwrap().contains("locked"));
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_then_the_access_token_then_forgets() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 3600));
    assert!(f.broker.logout("a", false).await.unwrap().revoked);
    let hints: Vec<_> = f.script.asked().into_iter().map(|a| match a { Asked::Revoke { token, hint, .. } => (token, hint), other => panic!("{other:?}") }).collect();
    assert_eq!(hints, [("rt-1".to_owned(), "refresh_token".to_owned()), ("at-1".to_owned(), "access_token".to_owned())]);
    assert!(f.secrets.get(&vault::server_account("a")).unwrap().is_none());
    let r = f.broker.server("a").unwrap();
    assert_eq!((r.state, r.has_refresh_token, r.expires_at), (ServerState::SignedOut, false, None));
    assert!(matches!(f.broker.sign_in_request("a"), Err(Error::SignedOut(_))), "no host may sign a signed-out server back in");
}

#[tokio::test]
async fn a_failed_revocation_deletes_nothing_unless_asked_to_forget_locally() {
    let f = fixture();
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 3600));
    *f.script.revoke_fails.lock().unwrap() = Some("HTTP 500".into());
    assert!(matches!(f.broker.logout("a", false).await, Err(Error::Revoke { .. })));
    assert_eq!(f.stored("a").access_token.secret(), "at-1");
    assert_eq!(f.broker.server("a").unwrap().state, ServerState::SignedIn);
    let report = f.broker.logout("a", true).await.unwrap();
    assert!(!report.revoked);
    assert!(f.secrets.get(&vault::server_account("a")).unwrap().is_none());
}

#[tokio::test]
async fn two_clients_at_one_issuer_each_refresh_and_sign_out_with_their_own() {
    let f = fixture();
    let dynamic = dyn_client();
    let pre = client("pre-1", RegistrationKind::PreRegistered, Some("s3cret"));
    f.seed("dyn", &dynamic, issued("at-d", Some("rt-d"), 0));
    f.seed("pre", &pre, issued("at-p", Some("rt-p"), 0));
    f.script.answer(Ok(issued("at-d2", Some("rt-d2"), 3600)));
    f.script.answer(Ok(issued("at-p2", Some("rt-p2"), 3600)));
    f.broker.refresh("dyn").await.unwrap();
    f.broker.refresh("pre").await.unwrap();
    f.broker.logout("dyn", false).await.unwrap();
    f.broker.logout("pre", false).await.unwrap();
    let by: Vec<_> = f.script.asked().into_iter().map(|a| match a { Asked::Refresh { client_id, .. } | Asked::Revoke { client_id, .. } => client_id }).collect();
    assert_eq!(by, ["dyn-1", "pre-1", "dyn-1", "dyn-1", "pre-1", "pre-1"]);
    assert_eq!(f.broker.stored_client(&pre.client.key()).unwrap().unwrap().secret.unwrap().expose(), "s3cret");
}

#[tokio::test]
async fn a_sign_in_reuses_the_servers_own_client_then_a_dynamic_one() {
    let f = fixture();
    let pre = client("pre-1", RegistrationKind::PreRegistered, Some("s3cret"));
    f.seed("pre", &pre, issued("at-p", Some("rt-p"), 3600));
    f.seed("dyn", &dyn_client(), issued("at-d", Some("rt-d"), 3600));
    assert_eq!(f.broker.reusable_client("pre", ISSUER).unwrap().unwrap().client.client_id, "pre-1");
    assert_eq!(f.broker.reusable_client("new", ISSUER).unwrap().unwrap().client.client_id, "dyn-1");
    assert!(f.broker.reusable_client("new", "https://other-as.example").unwrap().is_none(), "clients never travel between issuers");
}

#[tokio::test]
async fn a_client_secret_kept_under_the_issuer_alone_is_found_and_moved() {
    let f = fixture();
    let pre = client("pre-1", RegistrationKind::PreRegistered, Some("s3cret"));
    f.seed("pre", &pre, issued("at-p", Some("rt-p"), 3600));
    // Rewrite the file and keychain as a one-client-per-issuer version left them.
    let key = pre.client.key();
    f.secrets.delete(&vault::client_account(&key)).unwrap();
    f.secrets.set(&vault::legacy_client_account(ISSUER), &Secret::new("s3cret")).unwrap();
    let path = f.broker.vault.home.config_dir.join("servers.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let record = json["clients"].as_object().unwrap().values().next().unwrap().clone();
    json["clients"] = serde_json::json!({ ISSUER: record });
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let fresh = fixture_over(&f);
    let found = fresh.stored_client(&key).unwrap().unwrap();
    assert_eq!(found.secret.unwrap().expose(), "s3cret");
    assert_eq!(f.secrets.accounts().iter().filter(|a| a.starts_with("client:")).cloned().collect::<Vec<_>>(), [vault::client_account(&key)]);
    assert!(!fresh.vault.store.with(|r| r.client(&key).unwrap().legacy_secret).unwrap());
}

/// A second broker over the same home and secrets (a restart).
fn fixture_over(f: &Fixture) -> Broker {
    let vault = Vault::with_secrets(f.broker.vault.home.clone(), f.secrets.clone()).unwrap();
    Broker::new(vault, HttpClient::new().unwrap(), f.script.clone())
}

#[tokio::test]
async fn a_pending_server_signs_in_with_its_request_a_known_one_with_its_url() {
    let f = fixture();
    assert!(matches!(f.broker.sign_in_request("new"), Err(Error::UnknownServer(_))));
    f.broker.add_pending("new", LoginRequest { url: "https://new.example/mcp".into(), ..Default::default() });
    assert_eq!(f.broker.sign_in_request("new").unwrap().url, "https://new.example/mcp");
    f.seed("a", &dyn_client(), issued("at-1", Some("rt-1"), 3600));
    let req = f.broker.sign_in_request("a").unwrap();
    assert_eq!((req.url.as_str(), req.name.as_deref()), ("https://a.example/mcp", Some("a")));
}

#[test]
fn server_names_are_checked() {
    assert!(validate_name("linear").is_ok());
    assert!(matches!(validate_name("../x"), Err(Error::BadName(_))));
}

#[test]
fn the_account_hint_comes_from_a_jwt_and_never_carries_control_characters() {
    use base64::Engine;
    let enc = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let jwt = format!("h.{}.s", enc(serde_json::json!({"sub": "u1", "email": "a@b.example\u{1b}[31m"})));
    assert_eq!(account_hint(&AccessToken::new(jwt)).as_deref(), Some("a@b.example[31m"));
    assert_eq!(account_hint(&AccessToken::new("opaque".into())), None);
}


#[test]
fn a_server_that_asks_for_no_sign_in_has_a_name_of_its_own_and_no_secret() {
    let f = fixture();
    f.seed("linear", &dyn_client(), issued("at", Some("rt"), 3600));
    let open = f.broker.add_open("docs", "https://docs.example/mcp").unwrap();
    assert_eq!(f.broker.open_url("docs").unwrap().as_deref(), Some("https://docs.example/mcp"));
    assert_eq!(f.broker.open_servers().unwrap(), vec![open]);
    assert!(f.secrets.get(&vault::server_account("docs")).unwrap().is_none(), "nothing in the keychain");
    assert!(matches!(f.broker.add_open("linear", "https://other.example/mcp"), Err(Error::NameTaken { .. })), "a signed-in server's name is taken");
    assert!(f.broker.remove_open("docs").unwrap());
    assert!(!f.broker.remove_open("docs").unwrap());
    assert_eq!(f.broker.open_url("docs").unwrap(), None);
}
