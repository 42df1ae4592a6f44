//! Finding the user's AI hosts: which of the hosts in [`catalog`] have a config file here,
//! which MCP servers each lists, what each runs ([`entry::Transport`]) and which plaintext
//! secrets it holds (named, never shown). Read-only: nothing here writes a file.
//!
//! A file that cannot be read or parsed is reported with the reason, and the other files
//! are still read. A file larger than [`MAX_CONFIG_BYTES`] is not read at all.

pub mod catalog;
pub mod entry;
pub mod mcp_remote;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use catalog::{Dirs, Format, HostKind, Location, Scope};
use entry::{Entry, JsonEntry, Lenient, TomlEntry, Transport};

/// Host configs are small; Claude Code's `~/.claude.json` also keeps per-project history and
/// grows to a few MiB. Anything larger is not a config file worth reading.
pub const MAX_CONFIG_BYTES: u64 = 32 * 1024 * 1024;

/// One config file that exists, and what it says.
#[derive(Debug, Clone, Serialize)]
pub struct DetectedConfig {
    pub host: HostKind,
    pub host_name: &'static str,
    pub path: PathBuf,
    pub scope: Scope,
    pub servers: Vec<DetectedServer>,
    /// Why the file could not be read (then `servers` is empty).
    pub error: Option<String>,
}

/// One server entry of a config file.
#[derive(Debug, Clone, Serialize)]
pub struct DetectedServer {
    pub name: String,
    /// For Claude Code's local scope: the project directory the entry belongs to.
    pub project: Option<String>,
    pub transport: Transport,
    /// Where the entry holds a plaintext secret (`env.GITHUB_TOKEN`): names only.
    pub plaintext_secrets: Vec<String>,
    /// The headers it sends, with their values (never serialized).
    #[serde(skip)]
    pub sends: entry::Sends,
    /// For a local program: its command line and `env`, with values (never serialized).
    #[serde(skip)]
    pub local: entry::Local,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is larger than {} MiB", MAX_CONFIG_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("it is not valid JSON: {0}")]
    Json(String),
    #[error("it is not valid TOML: {0}")]
    Toml(String),
}

/// The JSON files hosts write, with the server lists of every host (each host uses one key).
#[derive(Debug, Default, Deserialize)]
struct JsonConfig {
    #[serde(rename = "mcpServers", default)]
    mcp_servers: BTreeMap<String, Lenient<JsonEntry>>,
    /// VS Code.
    #[serde(default)]
    servers: BTreeMap<String, Lenient<JsonEntry>>,
    /// Zed.
    #[serde(default)]
    context_servers: BTreeMap<String, Lenient<JsonEntry>>,
    /// Claude Code's local scope: `projects.<dir>.mcpServers`.
    #[serde(default)]
    projects: BTreeMap<String, Lenient<ProjectServers>>,
}

#[derive(Debug, Default, Deserialize)]
struct ProjectServers {
    #[serde(rename = "mcpServers", default)]
    mcp_servers: BTreeMap<String, Lenient<JsonEntry>>,
}

#[derive(Debug, Default, Deserialize)]
struct TomlConfig {
    #[serde(default)]
    mcp_servers: BTreeMap<String, TomlEntry>,
}

/// Every host config found for this user (and in `project`, when given).
pub fn detect(dirs: &Dirs, project: Option<&Path>) -> Vec<DetectedConfig> {
    catalog::locations(dirs, project).into_iter().filter(|l| l.path.is_file()).map(|l| read_location(&l)).collect()
}

/// What one config file says, or why it could not be read.
pub fn read_location(location: &Location) -> DetectedConfig {
    let (servers, error) = match read_servers(location) {
        Ok(servers) => (servers, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    DetectedConfig {
        host: location.host,
        host_name: location.host.display_name(),
        path: location.path.clone(),
        scope: location.scope.clone(),
        servers,
        error,
    }
}

fn read_servers(location: &Location) -> Result<Vec<DetectedServer>, ReadError> {
    let text = read_capped(&location.path)?;
    match location.format {
        Format::Toml => {
            let config: TomlConfig = toml::from_str(&text).map_err(|e| ReadError::Toml(e.message().to_owned()))?;
            Ok(config.mcp_servers.iter().map(|(name, e)| describe(name, None, &Entry::from(e))).collect())
        }
        Format::Json => {
            let config = serde_json::from_str(&text).map_err(|e| ReadError::Json(e.to_string()))?;
            Ok(servers_of(location.host, &config))
        }
        Format::Jsonc => Ok(servers_of(location.host, &parse_jsonc(&text)?)),
    }
}

fn read_capped(path: &Path) -> Result<String, ReadError> {
    if std::fs::metadata(path)?.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok(std::fs::read_to_string(path)?)
}

/// JSON with the comments and trailing commas VS Code, Zed and Gemini CLI allow, and none of
/// the parser's other leniencies (single quotes, missing commas, hex numbers).
pub fn jsonc_options() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

fn parse_jsonc(text: &str) -> Result<JsonConfig, ReadError> {
    let value = jsonc_parser::parse_to_serde_value(text, &jsonc_options()).map_err(|e| ReadError::Json(e.to_string()))?;
    match value {
        None => Ok(JsonConfig::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| ReadError::Json(e.to_string())),
    }
}

fn servers_of(host: HostKind, config: &JsonConfig) -> Vec<DetectedServer> {
    let list = match host {
        HostKind::VsCode => &config.servers,
        HostKind::Zed => &config.context_servers,
        _ => &config.mcp_servers,
    };
    let mut out: Vec<DetectedServer> = list.iter().filter_map(|(n, e)| Some(describe(n, None, &Entry::from(e.known()?)))).collect();
    if host == HostKind::ClaudeCode {
        for (dir, project) in &config.projects {
            let Some(project) = project.known() else { continue };
            out.extend(project.mcp_servers.iter().filter_map(|(n, e)| Some(describe(n, Some(dir), &Entry::from(e.known()?)))));
        }
    }
    out
}

fn describe(name: &str, project: Option<&str>, entry: &Entry) -> DetectedServer {
    DetectedServer {
        name: name.to_owned(),
        project: project.map(str::to_owned),
        transport: entry.transport(),
        plaintext_secrets: entry.plaintext_secrets(),
        sends: entry.sends(),
        local: entry.local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        dirs: Dirs,
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("a temp dir");
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let dirs = Dirs { home: dir.path().to_owned(), config: dir.path().join(".config"), codex_home: None };
        Fixture { _dir: dir, dirs }
    }

    fn names(c: &DetectedConfig) -> Vec<(&str, Option<&str>)> {
        c.servers.iter().map(|s| (s.name.as_str(), s.project.as_deref())).collect()
    }

    #[test]
    fn claude_code_user_and_local_scopes() {
        let f = fixture(&[(
            ".claude.json",
            r#"{"numStartups": 3, "mcpServers": {"linear": {"type": "stdio", "command": "npx", "args": ["-y", "mcp-remote", "https://mcp.linear.app/mcp"]}},
                "projects": {"/src/app": {"mcpServers": {"api": {"type": "http", "url": "https://api.example/mcp", "headers": {"Authorization": "Bearer sk-1"}}}, "history": []}}}"#,
        )]);
        let found = detect(&f.dirs, None);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].host, found[0].error.as_deref()), (HostKind::ClaudeCode, None));
        assert_eq!(names(&found[0]), [("linear", None), ("api", Some("/src/app"))]);
        assert_eq!(found[0].servers[1].plaintext_secrets, ["headers.Authorization"]);
    }

    #[test]
    fn vscode_jsonc_with_comments_and_trailing_commas() {
        let f = fixture(&[(
            ".config/Code/User/mcp.json",
            "// my servers\n{\n  \"servers\": {\n    /* work */ \"gh\": { \"type\": \"http\", \"url\": \"https://api.githubcopilot.com/mcp/\", },\n  },\n  \"inputs\": [],\n}\n",
        )]);
        let found = detect(&f.dirs, None);
        assert_eq!(found[0].host, HostKind::VsCode);
        assert_eq!(found[0].servers[0].transport, Transport::Remote { url: "https://api.githubcopilot.com/mcp/".into() });
    }

    #[test]
    fn codex_toml_and_zed_and_windsurf() {
        let f = fixture(&[
            (".codex/config.toml", "model = \"o4\"\n[mcp_servers.docs]\ncommand = \"mcp-broker\"\nargs = [\"connect\", \"docs\"]\n"),
            (".config/zed/settings.json", r#"{"theme": "One", "context_servers": {"z": {"source": "custom", "command": "npx", "args": ["mcp-remote", "https://z.example/mcp"]}}}"#),
            (".codeium/windsurf/mcp_config.json", r#"{"mcpServers": {"w": {"serverUrl": "https://w.example/mcp"}}}"#),
        ]);
        let mut found = detect(&f.dirs, None);
        found.sort_by_key(|c| c.host.id());
        let hosts: Vec<_> = found.iter().map(|c| c.host).collect();
        assert_eq!(hosts, [HostKind::CodexCli, HostKind::Windsurf, HostKind::Zed]);
        assert_eq!(found[0].servers[0].transport, Transport::Broker { server: "docs".into() });
        assert_eq!(found[1].servers[0].transport, Transport::Remote { url: "https://w.example/mcp".into() });
        assert!(matches!(&found[2].servers[0].transport, Transport::McpRemote(r) if r.url == "https://z.example/mcp"));
    }

    #[test]
    fn project_files() {
        let f = fixture(&[("proj/.mcp.json", r#"{"mcpServers": {"p": {"command": "uvx", "args": ["x"]}}}"#), ("proj/.cursor/mcp.json", r#"{"mcpServers": {}}"#)]);
        let project = f.dirs.home.join("proj");
        let found = detect(&f.dirs, Some(&project));
        let scopes: Vec<_> = found.iter().map(|c| (c.host, c.scope.clone())).collect();
        assert_eq!(scopes, [(HostKind::ClaudeCode, Scope::Project(project.clone())), (HostKind::Cursor, Scope::Project(project))]);
    }

    #[test]
    fn broken_files_are_reported_and_others_still_read() {
        let f = fixture(&[
            (".cursor/mcp.json", "{\"mcpServers\": {"),
            (".gemini/settings.json", r#"{"mcpServers": {"g": {"httpUrl": "https://g.example/mcp"}, "odd": 7}}"#),
            (".codex/config.toml", "[mcp_servers\n"),
        ]);
        let mut found = detect(&f.dirs, None);
        found.sort_by_key(|c| c.host.id());
        assert!(found[0].error.as_deref().is_some_and(|e| e.starts_with("it is not valid TOML")), "{:?}", found[0].error);
        assert!(found[1].error.as_deref().is_some_and(|e| e.starts_with("it is not valid JSON")), "{:?}", found[1].error);
        assert_eq!((found[2].host, names(&found[2])), (HostKind::GeminiCli, vec![("g", None)]), "an odd entry is skipped");
    }

    #[test]
    fn a_huge_file_is_not_read() {
        let f = fixture(&[]);
        let path = f.dirs.home.join(".claude.json");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_CONFIG_BYTES + 1).expect("grow");
        let found = detect(&f.dirs, None);
        assert_eq!(found[0].error.as_deref(), Some("it is larger than 32 MiB"));
    }

    #[test]
    fn serialized_output_holds_no_secret_values() {
        let f = fixture(&[(
            ".cursor/mcp.json",
            r#"{"mcpServers": {"a": {"url": "https://a.example/mcp", "headers": {"Authorization": "Bearer sk-very-secret"}},
                "b": {"command": "npx", "args": ["mcp-remote", "https://b.example/mcp", "--header", "X-Api-Key: key-very-secret"]}}}"#,
        )]);
        let json = serde_json::to_string(&detect(&f.dirs, None)).expect("json");
        assert!(!json.contains("very-secret"), "{json}");
        assert!(json.contains("headers.Authorization") && json.contains("--header X-Api-Key"), "{json}");
    }
}
