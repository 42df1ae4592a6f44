use super::*;

const CLAUDE: &str = r#"{
  "numStartups": 12,
  "mcpServers": {
    "linear": { "type": "stdio", "command": "npx", "args": ["-y", "mcp-remote", "https://mcp.linear.app/mcp"] },
    "git": { "type": "stdio", "command": "uvx", "args": ["mcp-server-git"] },
    "docs": { "type": "http", "url": "https://docs.example/mcp" }
  },
  "tipsHistory": { "a": 1 }
}
"#;

const PROJECT: &str = "{\n  \"mcpServers\": {\n    \"wiki\": {\"type\": \"http\", \"url\": \"https://wiki.example/mcp\"}\n  }\n}\n";

struct Fixture {
    dir: tempfile::TempDir,
    adopter: Adopter,
    keeper: MemKeeper,
}

/// An API-key server made: its name, URL and headers.
type Kept = (String, String, Vec<(String, String)>);

/// The keychain in memory, and the API-key servers made, by name.
#[derive(Default)]
struct MemKeeper {
    secrets: crate::vault::MemorySecrets,
    keys: std::sync::Mutex<Vec<Kept>>,
    refuse: bool,
}

impl Keeper for MemKeeper {
    fn keep_key(&self, server: &str, url: &str, headers: &[KeyHeader]) -> Result<(), String> {
        if self.refuse {
            return Err("the keychain is locked".into());
        }
        let headers = headers.iter().map(|h| (h.name.clone(), h.value.expose().to_owned())).collect();
        self.keys.lock().unwrap().push((server.to_owned(), url.to_owned(), headers));
        Ok(())
    }
    fn secrets(&self) -> &dyn SecretStore {
        &self.secrets
    }
}

impl Fixture {
    fn home_file(&self) -> PathBuf {
        self.dir.path().join("home/.claude.json")
    }
    fn project_file(&self) -> PathBuf {
        self.dir.path().join("proj/.mcp.json")
    }
    fn read(&self, p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }
    fn backups(&self) -> usize {
        std::fs::read_dir(self.adopter.backups()).map(|d| d.count()).unwrap_or(0)
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(dir.path().join("proj")).unwrap();
    std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".claude.json"), CLAUDE).unwrap();
    std::fs::write(dir.path().join("proj/.mcp.json"), PROJECT).unwrap();
    let adopter = Adopter {
        dirs: Dirs { home: home.clone(), config: home.join(".config"), codex_home: None },
        project: Some(dir.path().join("proj")),
        config_dir: dir.path().join("cfg"),
        exe: "/usr/bin/mcp-broker".into(),
    };
    Fixture { dir, adopter, keeper: MemKeeper::default() }
}

#[test]
fn connect_rewrites_the_remote_entries_of_every_file_and_keeps_the_rest() {
    let f = fixture();
    let r = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap();
    let names: Vec<Vec<&str>> = r.files.iter().map(|fr| fr.changed.iter().map(|c| c.name.as_str()).collect()).collect();
    assert_eq!(names, [vec!["docs", "linear"], vec!["wiki"]]);
    let text = f.read(&f.home_file());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mcpServers"]["docs"]["args"], serde_json::json!(["connect", "https://docs.example/mcp", "--host", "claude-code"]));
    assert_eq!(v["mcpServers"]["git"]["command"], "uvx", "local programs are left alone");
    assert_eq!(v["tipsHistory"]["a"], 1);
    assert!(r.files[0].skipped.iter().any(|s| s.name == "git"));
    assert_eq!(f.backups(), 2);
    assert_eq!(f.adopter.ledger().unwrap().connections.len(), 2);
}

#[test]
fn connecting_twice_changes_nothing_the_second_time() {
    let f = fixture();
    f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap();
    let after = f.read(&f.home_file());
    let again = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap();
    assert!(again.files.iter().all(|fr| fr.changed.is_empty() && fr.backup.is_none()));
    assert_eq!(f.read(&f.home_file()), after);
    assert_eq!(f.backups(), 2);
    assert_eq!(f.adopter.ledger().unwrap().connections.len(), 2);
}

#[test]
fn disconnect_puts_every_file_back_byte_for_byte() {
    let f = fixture();
    f.adopter.connect(HostKind::ClaudeCode, &Choice::Servers(vec!["docs".into()]), false, &f.keeper).unwrap();
    f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap();
    let r = f.adopter.disconnect(HostKind::ClaudeCode, false, &f.keeper).unwrap();
    assert!(r.files.iter().all(|fr| fr.skipped.is_empty()));
    assert_eq!(f.read(&f.home_file()), CLAUDE);
    assert_eq!(f.read(&f.project_file()), PROJECT);
    assert!(f.adopter.ledger().unwrap().connections.is_empty());
    assert!(matches!(f.adopter.disconnect(HostKind::ClaudeCode, false, &f.keeper), Err(AdoptError::NotConnected { .. })));
}

#[test]
fn an_entry_the_host_changed_since_stays_and_is_remembered() {
    let f = fixture();
    f.adopter.connect(HostKind::ClaudeCode, &Choice::Servers(vec!["docs".into(), "linear".into()]), false, &f.keeper).unwrap();
    let text = f.read(&f.home_file());
    let start = text.find("\"docs\": ").unwrap() + "\"docs\": ".len();
    let end = start + text[start..].find('}').unwrap() + 1;
    let edited = format!("{}{}{}", &text[..start], r#"{ "type": "http", "url": "https://docs2.example/mcp" }"#, &text[end..]);
    std::fs::write(f.home_file(), &edited).unwrap();
    let r = f.adopter.disconnect(HostKind::ClaudeCode, false, &f.keeper).unwrap();
    assert_eq!(r.files[0].skipped.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["docs"]);
    assert!(f.read(&f.home_file()).contains("mcp-remote"), "linear is back");
    let left = f.adopter.ledger().unwrap().connections;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].changes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["docs"]);
}

#[test]
fn a_dry_run_writes_nothing() {
    let f = fixture();
    let r = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, true, &f.keeper).unwrap();
    assert!(r.dry_run && r.files[0].diff.contains("+ "));
    assert_eq!(f.read(&f.home_file()), CLAUDE);
    assert_eq!(f.backups(), 0);
    assert!(!f.adopter.ledger_path().exists());
}

#[test]
fn unknown_servers_and_hosts_without_a_config_are_refused() {
    let f = fixture();
    assert!(matches!(f.adopter.connect(HostKind::ClaudeCode, &Choice::Servers(vec!["nope".into()]), false, &f.keeper), Err(AdoptError::NoServer { .. })));
    let e = f.adopter.connect(HostKind::Cursor, &Choice::All, false, &f.keeper).unwrap_err();
    assert!(matches!(e, AdoptError::NoConfig { .. }) && e.to_string().contains(".cursor/mcp.json"), "{e}");
    assert_eq!(f.read(&f.home_file()), CLAUDE);
}

#[test]
fn a_damaged_ledger_is_refused_and_nothing_is_written() {
    let f = fixture();
    std::fs::write(f.adopter.ledger_path(), "{not json").unwrap();
    let e = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap_err();
    assert!(e.to_string().contains("host-connections.json"), "{e}");
    assert_eq!(f.read(&f.home_file()), CLAUDE);
    assert_eq!(f.read(&f.adopter.ledger_path()), "{not json");
}

#[test]
fn a_symlinked_config_is_refused() {
    let f = fixture();
    let real = f.dir.path().join("elsewhere.json");
    std::fs::write(&real, CLAUDE).unwrap();
    std::fs::remove_file(f.home_file()).unwrap();
    std::os::unix::fs::symlink(&real, f.home_file()).unwrap();
    let e = f.adopter.connect(HostKind::ClaudeCode, &Choice::Servers(vec!["docs".into()]), false, &f.keeper).unwrap_err();
    assert!(matches!(e, AdoptError::Connect(ConnectError::Symlink(_))), "{e}");
    assert_eq!(f.read(&real), CLAUDE);
}

const KEYED: &str = r#"{
  "mcpServers": {
    "api": { "type": "http", "url": "https://api.example/mcp", "headers": { "Authorization": "Bearer sk-live-1", "X-Org": "acme" } },
    "gh": { "command": "npx", "args": ["-y", "mcp-remote", "https://gh.example/mcp", "--header", "Authorization:${AUTH}"], "env": { "AUTH": "Bearer ghp_2" } },
    "vs": { "type": "http", "url": "https://vs.example/mcp", "headers": { "X-Api-Key": "${input:key}" } }
  }
}
"#;

#[test]
fn keys_move_to_the_keychain_and_come_back_on_disconnect() {
    let f = fixture();
    std::fs::write(f.home_file(), KEYED).unwrap();
    let r = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, false, &f.keeper).unwrap();
    let file = &r.files[0];
    let keyed: Vec<_> = file.changed.iter().map(|c| (c.name.as_str(), c.keyed.as_deref())).collect();
    assert_eq!(keyed, [("api", Some("api")), ("gh", Some("gh"))]);
    assert!(file.skipped[0].reason.contains("${input:key}"), "{:?}", file.skipped);
    let kept = f.keeper.keys.lock().unwrap().clone();
    assert_eq!(kept[0], ("api".into(), "https://api.example/mcp".into(), vec![("Authorization".into(), "Bearer sk-live-1".into()), ("X-Org".into(), "acme".into())]));
    assert_eq!(kept[1].2, vec![("Authorization".to_owned(), "Bearer ghp_2".to_owned())]);
    // No key in the file, the ledger, the backup or the diff.
    let now = f.read(&f.home_file());
    assert!(now.contains(r#""args": ["connect", "api", "--host", "claude-code"]"#), "{now}");
    let ledger = f.read(&f.adopter.ledger_path());
    let backup = f.read(file.backup.as_ref().unwrap());
    for (what, text) in [("file", &now), ("ledger", &ledger), ("backup", &backup), ("diff", &file.diff)] {
        assert!(!text.contains("sk-live-1") && !text.contains("ghp_2"), "{what}: {text}");
    }
    assert!(backup.contains(connect::keys::MARK) && backup.contains("${input:key}"));
    // Disconnect: the exact text again, from the keychain, which then forgets it.
    f.adopter.disconnect(HostKind::ClaudeCode, false, &f.keeper).unwrap();
    assert_eq!(f.read(&f.home_file()), KEYED);
    assert_eq!(f.keeper.secrets.get(&format!("host-entry:{}##api", f.home_file().display())).unwrap().map(|s| s.expose().to_owned()), None);
}

#[test]
fn a_key_that_cannot_be_kept_leaves_its_entry_as_it_is() {
    let mut f = fixture();
    f.keeper.refuse = true;
    std::fs::write(f.home_file(), KEYED).unwrap();
    let r = f.adopter.connect(HostKind::ClaudeCode, &Choice::Servers(vec!["api".into()]), false, &f.keeper).unwrap();
    assert!(r.files[0].changed.is_empty());
    assert!(r.files[0].skipped[0].reason.contains("the keychain is locked"), "{:?}", r.files[0].skipped);
    assert_eq!(f.read(&f.home_file()), KEYED);
}

#[test]
fn a_dry_run_shows_the_key_marked_and_keeps_nothing() {
    let f = fixture();
    std::fs::write(f.home_file(), KEYED).unwrap();
    let r = f.adopter.connect(HostKind::ClaudeCode, &Choice::All, true, &f.keeper).unwrap();
    assert!(r.files[0].diff.contains(connect::keys::MARK) && !r.files[0].diff.contains("sk-live-1"), "{}", r.files[0].diff);
    assert!(f.keeper.keys.lock().unwrap().is_empty());
    assert_eq!(f.read(&f.home_file()), KEYED);
}

#[test]
fn codex_cli_toml_connects_and_comes_back_byte_for_byte() {
    const CODEX: &str = r#"model = "gpt-5" # mine

[mcp_servers.linear]
command = "npx"
args = ["-y", "mcp-remote", "https://mcp.linear.app/mcp"]

[mcp_servers.linear.env]
DEBUG = "1"

[mcp_servers.git]
command = "uvx"

[tui]
notifications = true

[mcp_servers.docs]
url = "https://docs.example/mcp"
"#;
    let f = fixture();
    let path = f.dir.path().join("home/.codex/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, CODEX).unwrap();
    f.adopter.connect(HostKind::CodexCli, &Choice::Servers(vec!["linear".into()]), false, &f.keeper).unwrap();
    let r = f.adopter.connect(HostKind::CodexCli, &Choice::All, false, &f.keeper).unwrap();
    assert_eq!(r.files[0].changed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["docs"]);
    let text = f.read(&path);
    let linear = "[mcp_servers.linear]\ncommand = \"/usr/bin/mcp-broker\"\nargs = [\"connect\", \"https://mcp.linear.app/mcp\", \"--host\", \"codex-cli\"]\nenv_vars = [";
    assert!(text.starts_with(&format!("model = \"gpt-5\" # mine\n\n{linear}")), "{text}");
    let r = f.adopter.disconnect(HostKind::CodexCli, false, &f.keeper).unwrap();
    assert!(r.files.iter().all(|fr| fr.skipped.is_empty()));
    assert_eq!(f.read(&path), CODEX);
    assert_eq!(f.read(&f.home_file()), CLAUDE, "other hosts' files are not touched");
}

/// A user config of `host` as people write it: comments where the format allows them, keys
/// the broker does not know, a remote entry, an mcp-remote one and a local program.
fn config_of(host: HostKind) -> String {
    let key = host.servers_key();
    match host.format() {
        format @ (crate::hosts::detect::Format::Json | crate::hosts::detect::Format::Jsonc) => {
            let comment = if format == crate::hosts::detect::Format::Jsonc { "  // my servers\n" } else { "" };
            let (remote, tail) = match host {
                HostKind::Windsurf => (r#"{ "serverUrl": "https://a.example/mcp" }"#, ""),
                HostKind::GeminiCli => (r#"{ "httpUrl": "https://a.example/mcp", "timeout": 5000 }"#, ""),
                HostKind::VsCode => (r#"{ "type": "http", "url": "https://a.example/mcp" }"#, ",\n  \"inputs\": []"),
                _ => (r#"{ "type": "http", "url": "https://a.example/mcp" }"#, ""),
            };
            format!(
                "{{\n  \"theme\": \"dark\",\n{comment}  \"{key}\": {{\n    \"a\": {remote},\n    \"b\": {{ \"command\": \"npx\", \"args\": [\"-y\", \"mcp-remote@latest\", \"https://b.example/mcp\"] }},\n    \"git\": {{ \"command\": \"uvx\", \"args\": [\"mcp-server-git\"] }}\n  }}{tail}\n}}\n"
            )
        }
        crate::hosts::detect::Format::Toml => "# codex\nmodel = \"o4\"\n\n[mcp_servers.a]\nurl = \"https://a.example/mcp\"\n\n[mcp_servers.b]\ncommand = \"npx\"\nargs = [\"-y\", \"mcp-remote@latest\", \"https://b.example/mcp\"]\n\n[mcp_servers.git]\ncommand = \"uvx\"\n".into(),
    }
}

#[test]
fn every_host_connects_and_comes_back_byte_for_byte() {
    for host in HostKind::ALL {
        let f = fixture();
        let path = f.adopter.dirs.user_file(host);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let original = config_of(host);
        std::fs::write(&path, &original).unwrap();
        let r = f.adopter.connect(host, &Choice::All, false, &f.keeper).unwrap_or_else(|e| panic!("{host:?}: {e}"));
        let file = r.files.iter().find(|fr| fr.path == path).unwrap_or_else(|| panic!("{host:?}: {:?}", r.files));
        let changed: Vec<_> = file.changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(changed, ["a", "b"], "{host:?}");
        assert_eq!(file.skipped.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["git"], "{host:?}");
        assert!(file.backup.as_ref().is_some_and(|b| b.is_file()), "{host:?}: a backup");
        // What the host reads now: both remote entries run the broker; the rest is as it was.
        let again = detect::read_location(&Location { host, path: path.clone(), scope: detect::Scope::User, format: host.format() });
        assert_eq!(again.error, None, "{host:?}: the file still parses");
        let through: Vec<_> = again.servers.iter().filter(|s| matches!(s.transport, detect::entry::Transport::Broker { .. })).map(|s| s.name.as_str()).collect();
        assert_eq!(through, ["a", "b"], "{host:?}");
        let now = f.read(&path);
        assert!(now.contains("uvx") && (now.contains("\"theme\": \"dark\"") || now.contains("model = \"o4\"")), "{host:?}: {now}");
        f.adopter.disconnect(host, false, &f.keeper).unwrap_or_else(|e| panic!("{host:?}: {e}"));
        assert_eq!(f.read(&path), original, "{host:?}: byte for byte");
    }
}
