//! The wire types against the wire: field names, optional fields, round trips, and
//! docs/CONTROL_API.md against [`ROUTES`] and the serialized types.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use time::macros::datetime;

use super::*;

/// `value` serializes to `wire`, and `wire` reads back to `value`.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, wire: Value) {
    assert_eq!(serde_json::to_value(value).unwrap(), wire);
    assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), value);
}

pub(super) fn sample_server() -> Server {
    Server {
        name: "linear".into(),
        url: "https://mcp.linear.app/mcp".into(),
        resource: "https://mcp.linear.app/mcp".into(),
        state: ServerState::SignedIn,
        issuer: "https://linear.app".into(),
        client_id: "abc".into(),
        account: Some("ada@example.com".into()),
        scopes: vec!["read".into()],
        expires_at: Some(datetime!(2026-01-02 03:04:05 UTC)),
        has_refresh_token: true,
        last_used_at: None,
        last_error: None,
        settings: vec![],
    }
}

fn server_wire() -> Value {
    json!({
        "name": "linear", "url": "https://mcp.linear.app/mcp", "resource": "https://mcp.linear.app/mcp",
        "state": "signed_in", "issuer": "https://linear.app", "client_id": "abc", "account": "ada@example.com",
        "scopes": ["read"], "expires_at": "2026-01-02T03:04:05Z", "has_refresh_token": true,
        "last_used_at": null, "last_error": null, "settings": [],
    })
}

#[test]
fn a_server_has_every_field_optional_ones_as_null() {
    round_trip(&sample_server(), server_wire());
}

#[test]
fn a_server_of_an_older_service_without_optional_fields_parses() {
    let mut wire = server_wire();
    for field in ["account", "scopes", "expires_at", "has_refresh_token", "last_used_at", "last_error"] {
        wire.as_object_mut().unwrap().remove(field);
    }
    let s: Server = serde_json::from_value(wire).unwrap();
    assert_eq!((s.account, s.expires_at, s.scopes.len()), (None, None, 0));
}

#[test]
fn a_sign_in_in_progress_shows_what_to_do_and_hides_it_from_debug() {
    let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
    let s = SignIn { server: "linear".into(), asked_by: Some("cursor".into()), started_at: t, how: SignInHow::Device, url: Some(Url::parse("https://as.example/device").unwrap()), user_code: Some("WDJB-MJHT".into()) };
    round_trip(&s, json!({ "server": "linear", "asked_by": "cursor", "started_at": "2026-01-02T03:04:05Z", "how": "device", "url": "https://as.example/device", "user_code": "WDJB-MJHT" }));
    assert!(!format!("{s:?}").contains("WDJB") && !format!("{s:?}").contains("as.example"));
}

#[test]
fn status_names_its_problems_and_reads_none_as_empty() {
    let status = Status { servers: vec![sample_server()], endpoint: "http://127.0.0.1:1".into(), version: "0.1.0".into(), problems: vec!["broken".into()], signins: vec![] };
    round_trip(&status, json!({ "servers": [server_wire()], "endpoint": "http://127.0.0.1:1", "version": "0.1.0", "problems": ["broken"], "signins": [] }));
    let old: Status = serde_json::from_value(json!({ "servers": [], "endpoint": "e", "version": "v" })).unwrap();
    assert!(old.problems.is_empty() && old.signins.is_empty());
    let older: Status = serde_json::from_value(json!({ "servers": [], "endpoint": "e" })).unwrap();
    assert_eq!(older.version, "", "services from before the version check named none");
    assert_eq!(status.server("linear").map(|s| s.url.as_str()), Some("https://mcp.linear.app/mcp"));
    assert!(status.server("github").is_none());
}

#[test]
fn small_answers_keep_their_field_names() {
    round_trip(&Ping { version: "1".into(), pid: 7, endpoint: "e".into() }, json!({ "version": "1", "pid": 7, "endpoint": "e" }));
    round_trip(&ErrorBody { error: "no".into() }, json!({ "error": "no" }));
    round_trip(&Resolved { name: "n".into() }, json!({ "name": "n" }));
    round_trip(&Refreshed { server: sample_server() }, json!({ "server": server_wire() }));
    round_trip(&Logout { local: true }, json!({ "local": true }));
    round_trip(&LoggedOut { revoked: false }, json!({ "revoked": false }));
    round_trip(&ServerRemoved { removed: "n".into(), revoked: true }, json!({ "removed": "n", "revoked": true }));
    round_trip(&HostRemoved { removed: "cursor".into() }, json!({ "removed": "cursor" }));
    round_trip(&NewHost { name: "cursor".into(), any_user: true }, json!({ "name": "cursor", "any_user": true }));
    round_trip(&Decide { decision: Decision::Always }, json!({ "decision": "always" }));
    round_trip(&Ack::OK, json!({ "ok": true }));
    round_trip(&SetPolicy { disabled: ["a".to_owned()].into() }, json!({ "disabled": ["a"] }));
    round_trip(&Stopping { stopping: true }, json!({ "stopping": true }));
}

#[test]
fn bodies_take_their_optional_fields_as_missing() {
    assert_eq!(serde_json::from_value::<Logout>(json!({})).unwrap(), Logout { local: false });
    assert!(!serde_json::from_value::<NewHost>(json!({ "name": "x" })).unwrap().any_user);
}

#[test]
fn a_new_hosts_key_is_on_the_wire_but_not_in_debug() {
    let added = HostAdded { host: "cursor".into(), key: Secret::new("k-123"), endpoint: "e".into() };
    assert_eq!(serde_json::to_value(&added).unwrap(), json!({ "host": "cursor", "key": "k-123", "endpoint": "e" }));
    let back: HostAdded = serde_json::from_value(json!({ "host": "cursor", "key": "k-123", "endpoint": "e" })).unwrap();
    assert_eq!(back.key.expose(), "k-123");
    assert!(!format!("{back:?}").contains("k-123"));
}

#[test]
fn a_login_sends_only_what_is_set_and_hides_its_secret_from_debug() {
    assert_eq!(serde_json::to_value(Login { url: "https://x/mcp".into(), ..Login::default() }).unwrap(), json!({ "url": "https://x/mcp" }));
    let wire = json!({
        "url": "https://x/mcp", "name": "x", "client_id": "id", "client_secret": "s3cret",
        "client_metadata_url": "https://app.example/client.json", "scopes": ["a", "b"], "timeout_secs": 30,
    });
    let login: Login = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(login.client_secret.as_ref().map(Secret::expose), Some("s3cret"));
    assert!(!format!("{login:?}").contains("s3cret"));
    assert_eq!(serde_json::to_value(&login).unwrap(), wire);
    // What older clients send: every optional field as null.
    let nulls = json!({ "url": "u", "name": null, "client_id": null, "client_secret": null, "client_metadata_url": null, "scopes": [], "timeout_secs": null });
    assert!(serde_json::from_value::<Login>(nulls).unwrap().client_secret.is_none());
}

#[test]
fn login_events_are_tagged_by_event() {
    let url = Url::parse("https://as.example/authorize?x=1").unwrap();
    round_trip(&LoginEvent::OpenUrl { url: url.clone() }, json!({ "event": "open_url", "url": url.as_str() }));
    round_trip(&LoginEvent::BrowserFailed { message: "m".into() }, json!({ "event": "browser_failed", "message": "m" }));
    round_trip(&LoginEvent::Done { server: sample_server() }, json!({ "event": "done", "server": server_wire() }));
    round_trip(&LoginEvent::Error { message: "m".into() }, json!({ "event": "error", "message": "m" }));
}

#[test]
fn an_unknown_login_event_is_read_as_unknown() {
    let e: LoginEvent = serde_json::from_str(r#"{"event":"hologram","code":"ABCD"}"#).unwrap();
    assert_eq!(e, LoginEvent::Unknown);
    assert!(serde_json::from_str::<LoginEvent>(r#"{"url":"https://x"}"#).is_err(), "an event names itself");
}

#[test]
fn lists_keep_their_item_field_names() {
    let t = datetime!(2026-01-02 03:04:05 UTC);
    let hosts = Hosts {
        hosts: vec![HostInfo { name: "cursor".into(), created_at: t, any_user: false }],
        usage: vec![Usage { host: "cursor".into(), server: "linear".into(), first_used: t, last_used: t, calls: 3 }],
    };
    round_trip(
        &hosts,
        json!({
            "hosts": [{ "name": "cursor", "created_at": "2026-01-02T03:04:05Z", "any_user": false }],
            "usage": [{ "host": "cursor", "server": "linear", "first_used": "2026-01-02T03:04:05Z", "last_used": "2026-01-02T03:04:05Z", "calls": 3 }],
        }),
    );
    let approvals = Approvals {
        pending: vec![Approval { id: 4, host: "cursor".into(), server: "linear".into(), scopes: vec!["read".into()], requested_at: t }],
        decisions: vec![DecisionRecord { host: "cursor".into(), server: "linear".into(), decision: Decision::Deny, decided_at: t }],
        ui_attached: true,
    };
    round_trip(
        &approvals,
        json!({
            "pending": [{ "id": 4, "host": "cursor", "server": "linear", "scopes": ["read"], "requested_at": "2026-01-02T03:04:05Z" }],
            "decisions": [{ "host": "cursor", "server": "linear", "decision": "deny", "decided_at": "2026-01-02T03:04:05Z" }],
            "ui_attached": true,
        }),
    );
    round_trip(
        &Policy { tools: vec![Tool { name: "echo".into(), description: None, enabled: true }] },
        json!({ "tools": [{ "name": "echo", "description": null, "enabled": true }] }),
    );
    let call = Call { time: t, host: "cursor".into(), server: "linear".into(), method: Some("tools/call".into()), tool: None, status: 200, duration_ms: 1.5, error: None };
    round_trip(
        &Calls { calls: vec![call] },
        json!({ "calls": [{ "time": "2026-01-02T03:04:05Z", "host": "cursor", "server": "linear", "method": "tools/call", "tool": null, "status": 200, "duration_ms": 1.5, "error": null }] }),
    );
}

#[test]
fn audit_queries_escape_values_and_drop_empty_filters() {
    let q = AuditQuery { server: Some("linear".into()), host: None, limit: Some(5) };
    assert_eq!(q.to_query(), "server=linear&limit=5");
    let q = AuditQuery { server: Some(String::new()), host: Some("cursor & co".into()), limit: None };
    assert_eq!(q.to_query(), "host=cursor+%26+co");
    assert_eq!(AuditQuery::default().to_query(), "");
}

mod doc;
