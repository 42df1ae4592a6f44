//! The app's commands on Tauri's mock runtime (no display), against a real broker service
//! started in this process on a throwaway home: each command is a call on the control API.
//!
//! The "Detected apps" commands run on a throwaway user home too, with a Claude Code
//! `~/.claude.json` and a VS Code `mcp.json` (JSON with comments) from `fixtures/`.
//!
//! Needs a Secret Service (host keys live in the keychain): run under
//! `scripts/with-keychain.sh cargo test -p mcp-broker-app`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_broker::hosts::detect::Dirs;
use mcp_broker_app::cli_path::{CliSearch, CLI_NAME};
use mcp_broker_app::service::{Mode, Supervisor};
use mcp_broker_app::{Api, Apps};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

struct Fixture {
    _app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    supervisor: Arc<Supervisor>,
    /// The user's home the detected apps live in.
    user: PathBuf,
    /// The `mcp-broker` program the rewritten entries run.
    cli: PathBuf,
    _home: tempfile::TempDir,
}

const CLAUDE_CODE: &str = include_str!("fixtures/claude.json");
const VS_CODE: &str = include_str!("fixtures/vscode-mcp.json");

impl Drop for Fixture {
    fn drop(&mut self) {
        let s = self.supervisor.clone();
        let _ = std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(s.stop())).join();
    }
}

fn fixture() -> Fixture {
    fixture_with(&[], true)
}

/// A broker home, and a user home holding `files` (paths relative to it); with `cli`, an
/// `mcp-broker` program beside the app (else none anywhere).
fn fixture_with(files: &[(&str, &str)], cli: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let home = mcp_broker::vault::Home::at(dir.path()).expect("a home");
    let user = home.config_dir.parent().expect("the home's dir").join("user");
    for (rel, text) in files {
        let path = user.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let bin = user.parent().expect("the home's dir").join("bin");
    if cli {
        write_program(&bin.join(CLI_NAME));
    }
    let dirs = Dirs { home: user.clone(), config: user.join(".config"), codex_home: None };
    let apps = Apps::new(Some(dirs), &home, CliSearch { beside: Some(bin.clone()), path: None });
    let supervisor = Supervisor::start_or_attach(home).expect("the service starts");
    let app = mcp_broker_app::with_commands(mock_builder())
        .manage(Api::new(supervisor.clone()))
        .manage(apps)
        .build(mock_context(noop_assets()))
        .expect("the app builds");
    let window = WebviewWindowBuilder::new(&app, "main", Default::default()).build().expect("a window");
    Fixture { _app: app, window, supervisor, user, cli: bin.join(CLI_NAME), _home: dir }
}

fn write_program(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
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

// ---------------------------------------------------------------- detected apps

const CLAUDE_FILE: &str = ".claude.json";
const VS_CODE_FILE: &str = ".config/Code/User/mcp.json";

fn apps_fixture() -> Fixture {
    fixture_with(&[(CLAUDE_FILE, CLAUDE_CODE), (VS_CODE_FILE, VS_CODE)], true)
}

fn app<'a>(list: &'a Value, host: &str) -> &'a Value {
    list["apps"].as_array().expect("apps").iter().find(|a| a["host"] == host).unwrap_or_else(|| panic!("no {host} in {list}"))
}

/// Each server of an app's first file: (name, transport kind).
fn kinds(app: &Value) -> Vec<(String, String)> {
    let servers = app["files"][0]["servers"].as_array().expect("servers");
    servers.iter().map(|s| (s["name"].as_str().unwrap().to_owned(), s["transport"]["kind"].as_str().unwrap().to_owned())).collect()
}

fn read(f: &Fixture, rel: &str) -> String {
    std::fs::read_to_string(f.user.join(rel)).expect("the config file")
}

#[test]
fn detected_apps_lists_each_host_with_its_files_and_servers() {
    let f = apps_fixture();
    let list = invoke(&f, "detected_apps", json!({})).unwrap();
    let hosts: Vec<&str> = list["apps"].as_array().unwrap().iter().filter_map(|a| a["host"].as_str()).collect();
    assert_eq!(hosts, ["claude-code", "vs-code"]);

    let claude = app(&list, "claude-code");
    assert_eq!(claude["name"], "Claude Code");
    assert_eq!(claude["files"][0]["path"], f.user.join(CLAUDE_FILE).to_str().unwrap());
    let own = |n: &str, k: &str| (n.to_owned(), k.to_owned());
    assert_eq!(kinds(claude), [own("filesystem", "local"), own("github", "remote"), own("linear", "mcp_remote"), own("notion", "remote"), own("sentry", "remote")]);
    let github = &claude["files"][0]["servers"][1];
    assert_eq!(github["plaintext_secrets"], json!(["headers.Authorization"]));
    assert_eq!(claude["files"][0]["servers"][4]["project"], "/home/user/src/app", "Claude Code's local scope");
    assert!(!list.to_string().contains("ghp_Fixture"), "a secret's name, never its value: {list}");
    assert_eq!((claude["connected"].as_bool(), claude["would_change"].as_u64(), claude["through_broker"].as_u64()), (Some(false), Some(4), Some(0)), "github's key goes to the keychain");
    assert_eq!(claude["cannot_connect"], Value::Null);

    let vscode = app(&list, "vs-code");
    assert_eq!(vscode["files"][0]["path"], f.user.join(VS_CODE_FILE).to_str().unwrap());
    assert_eq!(vscode["files"][0]["error"], Value::Null, "comments and trailing commas are fine here");
    assert_eq!(kinds(vscode), [own("github", "remote"), own("linear", "mcp_remote"), own("playwright", "local")]);
    assert_eq!(vscode["would_change"], 1, "github sends its key from an ${{input:…}} the broker cannot read: left");
}

#[test]
fn preview_shows_the_diff_and_what_is_left_alone_and_writes_nothing() {
    let f = apps_fixture();
    let r = invoke(&f, "preview_connect", json!({ "host": "claude-code" })).unwrap();
    assert_eq!(r["dry_run"], true);
    let file = &r["files"][0];
    let changed: Vec<&str> = file["changed"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(changed, ["github", "linear", "notion", "sentry"]);
    assert_eq!(file["changed"][0]["keyed"], "github", "its key becomes the broker's API-key server");
    let diff = file["diff"].as_str().unwrap();
    assert!(diff.contains("  - ") && diff.contains("mcp-remote"), "{diff}");
    let plus = format!("  + {{\"type\": \"stdio\", \"command\": {}, \"args\": [\"connect\", \"https://mcp.linear.app/mcp\", \"--host\", \"claude-code\"]}}", json!(f.cli.to_str().unwrap()));
    assert!(diff.contains(&plus), "{diff}\nwanted {plus}");
    let skipped: Vec<(&str, &str)> = file["skipped"].as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap(), s["reason"].as_str().unwrap())).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].0 == "filesystem" && skipped[0].1.contains("local program"), "{skipped:?}");
    assert_eq!(file["backup"], Value::Null);
    assert!(!r.to_string().contains("ghp_Fixture"), "{r}");

    assert_eq!(read(&f, CLAUDE_FILE), CLAUDE_CODE, "a preview writes nothing");
    let config = f.supervisor.home().config_dir.clone();
    assert!(!config.join("host-connections.json").exists() && !config.join("host-backups").exists());
    assert_eq!(app(&invoke(&f, "detected_apps", json!({})).unwrap(), "claude-code")["connected"], false);
}

#[test]
fn connect_rewrites_and_disconnect_restores_byte_for_byte() {
    let f = apps_fixture();
    for (host, rel, original) in [("claude-code", CLAUDE_FILE, CLAUDE_CODE), ("vs-code", VS_CODE_FILE, VS_CODE)] {
        let r = invoke(&f, "connect_app", json!({ "host": host })).unwrap();
        assert_eq!(r["dry_run"], false, "{r}");
        let backup = PathBuf::from(r["files"][0]["backup"].as_str().unwrap_or_else(|| panic!("a backup: {r}")));
        let as_it_was = original.replace("Bearer ghp_FixtureNotARealToken0000000000000000", mcp_broker::hosts::connect::keys::MARK);
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), as_it_was, "the backup is the file as it was, with the key marked");
        assert!(r["running"].is_array(), "Linux tells whether the host runs: {r}");

        let now = read(&f, rel);
        assert_ne!(now, original);
        let runs = format!("\"command\": {}, \"args\": [\"connect\", \"https://mcp.linear.app/mcp\", \"--host\", \"{host}\"]", json!(f.cli.to_str().unwrap()));
        assert!(now.contains(&runs), "{now}");
        assert!(!now.contains("mcp-remote"), "{now}");

        let listed = invoke(&f, "detected_apps", json!({})).unwrap();
        let a = app(&listed, host);
        assert_eq!((a["connected"].as_bool(), a["would_change"].as_u64()), (Some(true), Some(0)), "{a}");
        assert_eq!(a["through_broker"], if host == "claude-code" { 4 } else { 1 });
        assert!(kinds(a).iter().any(|(n, k)| n == "linear" && k == "broker"), "{a}");
    }
    let vscode = read(&f, VS_CODE_FILE);
    assert!(vscode.contains("// The team's tracker") && vscode.contains("/* GitHub asks"), "comments stay: {vscode}");
    let claude: Value = serde_json::from_str(&read(&f, CLAUDE_FILE)).expect("still JSON");
    let before: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    assert_eq!(claude["mcpServers"]["github"]["args"], json!(["connect", "github", "--host", "claude-code"]), "the entry with a key runs the broker's API-key server");
    assert!(!read(&f, CLAUDE_FILE).contains("ghp_Fixture"), "and the key left the file");
    assert_eq!(claude["tipsHistory"], before["tipsHistory"], "and every other key");

    for (host, rel, original) in [("claude-code", CLAUDE_FILE, CLAUDE_CODE), ("vs-code", VS_CODE_FILE, VS_CODE)] {
        let r = invoke(&f, "disconnect_app", json!({ "host": host })).unwrap();
        assert_eq!(r["files"][0]["skipped"], json!([]), "{r}");
        assert_eq!(read(&f, rel), original, "{host}'s file byte for byte");
        assert_eq!(app(&invoke(&f, "detected_apps", json!({})).unwrap(), host)["connected"], false);
    }
    let e = invoke(&f, "disconnect_app", json!({ "host": "claude-code" })).unwrap_err();
    assert!(e.as_str().unwrap().contains("not connected"), "{e}");
}

#[test]
fn detected_apps_errors_are_one_line() {
    let f = apps_fixture();
    let e = invoke(&f, "preview_connect", json!({ "host": "emacs" })).unwrap_err();
    assert!(e.as_str().unwrap().contains("unknown app \"emacs\""), "{e}");
    let e = invoke(&f, "connect_app", json!({ "host": "cursor" })).unwrap_err();
    assert!(e.as_str().unwrap().starts_with("no config file of Cursor found"), "{e}");

    let codex = (".codex/config.toml", "[mcp_servers.docs]\nurl = \"https://docs.example/mcp\"\n");
    let f = fixture_with(&[codex], true);
    let detected = invoke(&f, "detected_apps", json!({})).unwrap();
    let codex_app = app(&detected, "codex-cli");
    assert!(codex_app["cannot_connect"].is_null() && codex_app["would_change"] == 1, "Codex CLI's TOML is written too: {codex_app}");
    let broken = (".codex/config.toml", "[mcp_servers.docs\n");
    let f = fixture_with(&[broken], true);
    let why = app(&invoke(&f, "detected_apps", json!({})).unwrap(), "codex-cli")["cannot_connect"].as_str().unwrap().to_owned();
    assert!(why.contains("not valid TOML") && !why.contains('\n'), "{why}");

    let f = fixture_with(&[(CLAUDE_FILE, CLAUDE_CODE)], false);
    let why = app(&invoke(&f, "detected_apps", json!({})).unwrap(), "claude-code")["cannot_connect"].as_str().unwrap().to_owned();
    assert!(why.starts_with("cannot find the mcp-broker command line"), "{why}");
    let e = invoke(&f, "connect_app", json!({ "host": "claude-code" })).unwrap_err();
    assert_eq!(e.as_str(), Some(why.as_str()));
    assert!(!why.contains('\n'));
    assert_eq!(read(&f, CLAUDE_FILE), CLAUDE_CODE);
}
