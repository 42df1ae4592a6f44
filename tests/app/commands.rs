//! The app's commands on Tauri's mock runtime (no display), against a real broker service
//! started in this process on a throwaway home: each command is a call on the control API.
//!
//! Needs a Secret Service (host keys live in the keychain): run under
//! `scripts/with-keychain.sh cargo test -p mcp-broker-app`.

use std::sync::Arc;

use mcp_broker_app::service::{Mode, Supervisor};
use mcp_broker_app::Api;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

struct Fixture {
    _app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    supervisor: Arc<Supervisor>,
    _home: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let s = self.supervisor.clone();
        let _ = std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(s.stop())).join();
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let home = mcp_broker::vault::Home::at(dir.path()).expect("a home");
    let supervisor = Supervisor::start_or_attach(home).expect("the service starts");
    let app = mcp_broker_app::with_commands(mock_builder())
        .manage(Api::new(supervisor.clone()))
        .build(mock_context(noop_assets()))
        .expect("the app builds");
    let window = WebviewWindowBuilder::new(&app, "main", Default::default()).build().expect("a window");
    Fixture { _app: app, window, supervisor, _home: dir }
}

/// Invoke a command as the window's page does (origin tauri://localhost on Linux).
fn invoke_from(f: &Fixture, origin: &str, cmd: &str, args: Value) -> Result<Value, Value> {
    let req = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: origin.parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(&f.window, req).map(|b| b.deserialize::<Value>().expect("JSON"))
}

fn invoke(f: &Fixture, cmd: &str, args: Value) -> Result<Value, Value> {
    invoke_from(f, "tauri://localhost", cmd, args)
}

#[test]
fn runs_the_service_in_process_when_none_answers() {
    let f = fixture();
    assert_eq!(f.supervisor.mode(), Mode::InProcess);
    let info = invoke(&f, "app_info", json!({})).unwrap();
    assert_eq!(info["mode"], "in_process");
    assert_eq!(info["service_pid"], std::process::id());
    assert!(info["endpoint"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{info}");
}

#[test]
fn attaches_when_a_service_already_answers() {
    let f = fixture();
    let again = Supervisor::start_or_attach(f.supervisor.home().clone()).expect("attaches");
    assert_eq!(again.mode(), Mode::Attached);
}

#[test]
fn status_lists_no_servers_on_a_new_home() {
    let f = fixture();
    let v = invoke(&f, "status", json!({})).unwrap();
    assert_eq!(v["servers"], json!([]));
    assert!(v["endpoint"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert_eq!(v["problems"], json!([]), "a new home has no problems: {v}");
}

#[test]
fn host_keys_are_created_listed_and_deleted() {
    let f = fixture();
    let created = invoke(&f, "add_host", json!({ "name": "cursor" })).unwrap();
    assert_eq!(created["host"], "cursor");
    assert!(created["key"].as_str().unwrap().len() >= 20, "a real key: {created}");
    let listed = invoke(&f, "hosts", json!({})).unwrap();
    let names: Vec<&str> = listed["hosts"].as_array().unwrap().iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(names, ["cursor"]);
    // The key is shown once: the list never carries it.
    assert!(!listed.to_string().contains(created["key"].as_str().unwrap()));
    invoke(&f, "remove_host", json!({ "name": "cursor" })).unwrap();
    let listed = invoke(&f, "hosts", json!({})).unwrap();
    assert_eq!(listed["hosts"], json!([]));
}

#[test]
fn bad_input_is_refused_before_the_service() {
    let f = fixture();
    let e = invoke(&f, "add_host", json!({ "name": "../etc" })).unwrap_err();
    assert!(e.as_str().unwrap().contains("host name"), "{e}");
    let e = invoke(&f, "decide", json!({ "id": "1", "decision": "sure" })).unwrap_err();
    assert!(e.as_str().unwrap().contains("once, always or deny"), "{e}");
    let e = invoke(&f, "login", json!({ "url": "file:///etc/passwd" })).unwrap_err();
    assert!(e.as_str().unwrap().contains("https://"), "{e}");
    let e = invoke(&f, "login", json!({ "url": "  " })).unwrap_err();
    assert!(e.as_str().unwrap().contains("URL"), "{e}");
}

#[test]
fn a_failed_sign_in_reports_the_services_error() {
    let f = fixture();
    // Nothing listens on port 9: discovery fails, and the NDJSON stream ends in an error event.
    let e = invoke(&f, "login", json!({ "url": "http://127.0.0.1:9/mcp", "name": "nothing" })).unwrap_err();
    assert!(!e.as_str().unwrap().is_empty(), "{e}");
    let v = invoke(&f, "status", json!({})).unwrap();
    assert!(v["servers"].as_array().unwrap().iter().all(|s| s["state"] != "signed_in"), "{v}");
}

#[test]
fn unknown_servers_are_errors_not_panics() {
    let f = fixture();
    for (cmd, args) in [
        ("logout", json!({ "name": "nope" })),
        ("refresh", json!({ "name": "nope" })),
        ("remove_server", json!({ "name": "nope" })),
        ("remove_host", json!({ "name": "nope" })),
    ] {
        let e = invoke(&f, cmd, args).unwrap_err();
        assert!(e.is_string(), "{cmd}: {e}");
    }
}

#[test]
fn the_audit_log_starts_empty_and_takes_filters() {
    let f = fixture();
    let v = invoke(&f, "audit", json!({ "server": "linear", "host": "cursor & co", "limit": 5 })).unwrap();
    assert_eq!(v["calls"], json!([]));
}

#[test]
fn approvals_and_policy_answer() {
    let f = fixture();
    let v = invoke(&f, "approvals", json!({})).unwrap();
    assert_eq!(v["pending"], json!([]), "{v}");
    assert_eq!(v["ui_attached"], true, "polling marks the UI attached: {v}");
    let v = invoke(&f, "policy", json!({ "host": "cursor", "server": "linear" })).unwrap();
    assert!(v["tools"].is_array(), "{v}");
    invoke(&f, "set_policy", json!({ "host": "cursor", "server": "linear", "disabled": ["delete_record"] })).unwrap();
}

#[test]
fn commands_are_refused_to_remote_origins() {
    let f = fixture();
    assert!(invoke_from(&f, "https://evil.example", "status", json!({})).is_err());
    assert!(invoke_from(&f, "http://127.0.0.1:8080", "add_host", json!({ "name": "x" })).is_err());
}
