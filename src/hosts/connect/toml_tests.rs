//! Connecting and undoing Codex CLI's `config.toml`: the plan, the new text and the undo, on
//! a file written the way people write theirs.

use super::*;
use crate::hosts::detect::{self, Scope};

const CODEX: &str = r#"# ~/.codex/config.toml
model = "gpt-5-codex"
model_reasoning_effort = "high"
approval_policy = "on-request"

# Linear, through mcp-remote
[mcp_servers.linear]
command = "npx"
args = ["-y", "mcp-remote", "https://mcp.linear.app/mcp", "--transport", "http-only"]
startup_timeout_sec = 30 # it is slow to start

[mcp_servers.linear.env]
NODE_OPTIONS = "--no-warnings"

[mcp_servers.docs]
url = "https://docs.example/mcp?team=a&q=\"x\""

[mcp_servers.git]
command = "uvx"
args = ["mcp-server-git", "--repository", "/src/app"]

[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = "ghp_not_a_real_one" }

[mcp_servers.wiki]
url = "https://wiki.example/mcp"

[profiles.fast]
model = "gpt-5-mini"

[tui]
notifications = true
"#;

const EXE: &str = "/usr/bin/mcp-broker";

struct Fixture {
    dir: tempfile::TempDir,
    location: Location,
}

fn fixture(text: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write");
    let location = Location { host: HostKind::CodexCli, path, scope: Scope::User, format: Format::Toml };
    Fixture { dir, location }
}

fn planned(f: &Fixture, choice: &Choice) -> Plan {
    plan(&f.location, &detect::read_location(&f.location), choice, Path::new(EXE), false).expect("a plan")
}

/// The file's servers by name, as Codex CLI would read them.
fn servers(text: &str) -> toml::Table {
    let parsed: toml::Table = text.parse().expect("valid TOML");
    parsed.get("mcp_servers").and_then(toml::Value::as_table).cloned().expect("mcp_servers")
}

fn args_of(servers: &toml::Table, name: &str) -> Vec<String> {
    let args = servers[name].get("args").and_then(toml::Value::as_array).cloned().unwrap_or_default();
    args.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect()
}

#[test]
fn connects_the_remote_entries_and_keeps_every_other_byte() {
    let f = fixture(CODEX);
    let p = planned(&f, &Choice::All);
    let changed: Vec<_> = p.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(changed, ["docs", "linear", "wiki"]);
    let skipped: Vec<_> = p.skipped.iter().map(|s| (s.name.as_str(), s.reason.contains("--include-local"))).collect();
    assert_eq!(skipped, [("git", false), ("github", true)], "only the program with a key in its env is offered --include-local");
    assert!(p.changes[1].before.ends_with("[mcp_servers.linear.env]\nNODE_OPTIONS = \"--no-warnings\""), "{}", p.changes[1].before);

    let new_text = p.new_text().expect("new text");
    let s = servers(&new_text);
    assert_eq!(args_of(&s, "docs"), ["connect", "https://docs.example/mcp?team=a&q=\"x\"", "--host", "codex-cli"]);
    assert_eq!(args_of(&s, "linear"), ["connect", "https://mcp.linear.app/mcp", "--host", "codex-cli"]);
    assert_eq!(s["linear"]["command"].as_str(), Some(EXE));
    assert!(s["linear"].get("env").is_none() && s["docs"].get("url").is_none());
    // Everything but the three entries is as it was.
    let mut rest = new_text.clone();
    for c in &p.changes {
        rest = rest.replacen(&c.after, "", 1);
    }
    let mut rest_before = CODEX.to_owned();
    for c in &p.changes {
        rest_before = rest_before.replacen(&c.before, "", 1);
    }
    assert_eq!(rest, rest_before);
    assert!(new_text.starts_with("# ~/.codex/config.toml\nmodel = \"gpt-5-codex\"\n") && new_text.contains("\n# Linear, through mcp-remote\n[mcp_servers.linear]\ncommand"));
    let untouched = |from: &str, to: &str| &CODEX[CODEX.find(from).expect("from")..CODEX.find(to).expect("to")];
    assert!(new_text.contains(untouched("\n\n[mcp_servers.git]", "[mcp_servers.wiki]")), "git and github stay");
    assert!(new_text.ends_with(&CODEX[CODEX.find("\n\n[profiles.fast]").expect("profiles")..]), "the tables after stay");
}

#[test]
fn connect_write_undo_is_byte_for_byte_and_idempotent() {
    let f = fixture(CODEX);
    let p = planned(&f, &Choice::All);
    write(&f.location.path, &p.original, &p.original, &p.new_text().expect("text"), f.dir.path()).expect("written");
    let now = std::fs::read_to_string(&f.location.path).expect("read");
    let again = detect::read_location(&f.location);
    let through: Vec<_> = again.servers.iter().filter(|s| matches!(s.transport, Transport::Broker { .. })).map(|s| s.name.as_str()).collect();
    assert_eq!(through, ["docs", "linear", "wiki"]);
    assert!(planned(&f, &Choice::All).changes.is_empty(), "connecting again changes nothing");
    let (restored, skipped) = undo(HostKind::CodexCli, &now, &p.changes);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(restored, CODEX);
}

#[test]
fn only_the_chosen_entry_changes() {
    let f = fixture(CODEX);
    let p = planned(&f, &Choice::Servers(vec!["docs".into()]));
    assert_eq!(p.changes.len(), 1);
    let new_text = p.new_text().expect("text");
    assert_eq!(new_text.replacen(&p.changes[0].after, &p.changes[0].before, 1), CODEX);
    assert!(p.changes[0].after.starts_with("[mcp_servers.docs]\ncommand = \"/usr/bin/mcp-broker\"\nargs = [\"connect\", "), "{}", p.changes[0].after);
    assert!(p.changes[0].after.ends_with("\nenv_vars = [\"MCP_BROKER_HOME\", \"XDG_RUNTIME_DIR\", \"XDG_CONFIG_HOME\", \"XDG_DATA_HOME\", \"XDG_CACHE_HOME\", \"DBUS_SESSION_BUS_ADDRESS\", \"DISPLAY\", \"WAYLAND_DISPLAY\", \"BROWSER\"]"), "{}", p.changes[0].after);
}

#[test]
fn inline_entries_are_spliced_as_inline_tables() {
    let text = "model = \"o3\"\nmcp_servers.docs = { url = \"https://docs.example/mcp\" } # docs\n\n[mcp_servers.api]\nurl = \"https://api.example/mcp\"\n".to_owned();
    let f = fixture(&text);
    let p = planned(&f, &Choice::Servers(vec!["docs".into()]));
    let new_text = p.new_text().expect("text");
    let vars = CODEX_ENV_VARS.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ");
    assert_eq!(p.changes[0].after, format!("{{ command = \"/usr/bin/mcp-broker\", args = [\"connect\", \"https://docs.example/mcp\", \"--host\", \"codex-cli\"], env_vars = [{vars}] }}"));
    assert!(new_text.starts_with("model = \"o3\"\nmcp_servers.docs = { command = ") && new_text.contains("] } # docs\n\n[mcp_servers.api]"), "{new_text}");
    assert_eq!(undo(HostKind::CodexCli, &new_text, &p.changes).0, text);
}

#[test]
fn undo_finds_an_entry_the_host_reformatted() {
    let f = fixture(CODEX);
    let p = planned(&f, &Choice::Servers(vec!["wiki".into()]));
    let connected = p.new_text().expect("text");
    // The host writes the entry its own way: other quotes, other order, a comment.
    let vars = CODEX_ENV_VARS.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(",\n  ");
    let host_wrote = format!("[mcp_servers.wiki]\nargs = ['connect', 'https://wiki.example/mcp', '--host', 'codex-cli']  # mine\nenv_vars = [\n  {vars},\n]\ncommand = '{EXE}'");
    let reformatted = connected.replace(&p.changes[0].after, &host_wrote);
    assert_ne!(reformatted, connected);
    let (back, skipped) = undo(HostKind::CodexCli, &reformatted, &p.changes);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(back, CODEX);
    // An entry the user pointed elsewhere stays theirs.
    let edited = connected.replace("\"--host\", \"codex-cli\"]\nenv_vars", "\"--host\", \"me\"]\nenv_vars");
    assert_ne!(edited, connected);
    let (kept, skipped) = undo(HostKind::CodexCli, &edited, &p.changes);
    assert_eq!((kept, skipped.len()), (edited, 1));
}

#[test]
fn an_entry_rewritten_in_the_other_shape_is_left() {
    let f = fixture(CODEX);
    let p = planned(&f, &Choice::Servers(vec!["docs".into()]));
    let connected = p.new_text().expect("text");
    let inline_entry = toml_splice::render("{}", &EntryPath { servers_key: "mcp_servers", project: None, name: "docs".into() }, EXE, &args_of(&servers(&connected), "docs"), CODEX_ENV_VARS);
    let inline = connected.replace(&p.changes[0].after, &format!("[mcp_servers]\ndocs = {inline_entry}"));
    let (kept, skipped) = undo(HostKind::CodexCli, &inline, &p.changes);
    assert_eq!(kept, inline);
    assert!(skipped[0].reason.contains("another shape"), "{:?}", skipped);
}

#[test]
fn unsplicable_shapes_are_skipped_with_the_reason_and_others_connect() {
    let text = "[mcp_servers]\ndocs.url = \"https://docs.example/mcp\"\n\n[mcp_servers.api]\nurl = \"https://api.example/mcp\"\n";
    let f = fixture(text);
    let p = planned(&f, &Choice::All);
    assert_eq!(p.changes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["api"]);
    assert_eq!(p.skipped[0].name, "docs");
    assert!(p.skipped[0].reason.contains("dotted keys"), "{}", p.skipped[0].reason);
    let new_text = p.new_text().expect("text");
    assert!(new_text.starts_with("[mcp_servers]\ndocs.url = \"https://docs.example/mcp\"\n\n[mcp_servers.api]\ncommand"), "{new_text}");
}

#[test]
fn broken_toml_is_refused_before_anything() {
    let f = fixture("model = \"o3\"\n[mcp_servers.docs\nurl = \"https://docs.example/mcp\"\n");
    let err = plan(&f.location, &detect::read_location(&f.location), &Choice::All, Path::new(EXE), false).expect_err("refused");
    assert!(err.to_string().contains("not valid TOML"), "{err}");
}

#[test]
fn crlf_files_keep_their_line_endings() {
    let text = CODEX.replace('\n', "\r\n");
    let f = fixture(&text);
    let p = planned(&f, &Choice::All);
    let new_text = p.new_text().expect("text");
    assert!(!new_text.replace("\r\n", "").contains('\n'), "{new_text:?}");
    assert_eq!(undo(HostKind::CodexCli, &new_text, &p.changes).0, text);
}

#[test]
fn a_bearer_token_from_the_environment_is_not_dropped() {
    let f = fixture("[mcp_servers.tracker]\nurl = \"https://tracker.example/mcp\"\nbearer_token_env_var = \"TRACKER_TOKEN\"\n");
    let p = planned(&f, &Choice::All);
    assert!(p.changes.is_empty());
    assert!(p.skipped[0].reason.contains("${TRACKER_TOKEN}") && p.skipped[0].reason.contains("--header-env Authorization=VAR"), "{}", p.skipped[0].reason);
}
