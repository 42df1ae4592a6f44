//! The AI hosts mcp-broker knows, where each keeps its MCP server list, and in what shape.
//!
//! | host | user config (Linux · macOS · Windows) | servers under | format |
//! |---|---|---|---|
//! | Claude Desktop | `~/.config/Claude` · `~/Library/Application Support/Claude` · `%APPDATA%\Claude`, file `claude_desktop_config.json` | `mcpServers` | JSON |
//! | Claude Code | `~/.claude.json` (user scope, and `projects.<dir>.mcpServers`: local scope); project `.mcp.json` | `mcpServers` | JSON |
//! | Cursor | `~/.cursor/mcp.json`; project `.cursor/mcp.json` | `mcpServers` | JSON |
//! | VS Code | `~/.config/Code/User` · `~/Library/Application Support/Code/User` · `%APPDATA%\Code\User`, file `mcp.json`; project `.vscode/mcp.json` | `servers` | JSON with comments |
//! | Windsurf | `~/.codeium/windsurf/mcp_config.json` | `mcpServers` | JSON |
//! | Gemini CLI | `~/.gemini/settings.json`; project `.gemini/settings.json` | `mcpServers` | JSON with comments |
//! | Codex CLI | `~/.codex/config.toml` (`$CODEX_HOME`) | `[mcp_servers.NAME]` | TOML |
//! | Zed | `~/.config/zed/settings.json` (Linux, macOS) · `%APPDATA%\Zed\settings.json` | `context_servers` | JSON with comments |
//!
//! The home and config directories come from the `directories` crate (so `$HOME` and
//! `$XDG_CONFIG_HOME` are honoured on Linux).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An AI host whose configuration mcp-broker can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    VsCode,
    Windsurf,
    GeminiCli,
    CodexCli,
    Zed,
}

/// How a config file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    /// JSON with comments and trailing commas.
    Jsonc,
    Toml,
}

/// Whose servers a file lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "dir")]
pub enum Scope {
    /// The user's own, for every project.
    User,
    /// A project's, checked in with it (the directory holding the file's folder).
    Project(PathBuf),
}

/// One config file a host reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub host: HostKind,
    pub path: PathBuf,
    pub scope: Scope,
    pub format: Format,
}

impl HostKind {
    pub const ALL: [HostKind; 8] = [
        Self::ClaudeDesktop,
        Self::ClaudeCode,
        Self::Cursor,
        Self::VsCode,
        Self::Windsurf,
        Self::GeminiCli,
        Self::CodexCli,
        Self::Zed,
    ];

    /// The name the CLI takes (`mcp-broker hosts connect claude-code`).
    pub fn id(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "claude-desktop",
            Self::ClaudeCode => "claude-code",
            Self::Cursor => "cursor",
            Self::VsCode => "vs-code",
            Self::Windsurf => "windsurf",
            Self::GeminiCli => "gemini-cli",
            Self::CodexCli => "codex-cli",
            Self::Zed => "zed",
        }
    }

    /// The name people know it by.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "Claude Desktop",
            Self::ClaudeCode => "Claude Code",
            Self::Cursor => "Cursor",
            Self::VsCode => "VS Code",
            Self::Windsurf => "Windsurf",
            Self::GeminiCli => "Gemini CLI",
            Self::CodexCli => "Codex CLI",
            Self::Zed => "Zed",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.id() == id)
    }

    /// The names its programs run under (to tell whether it is running).
    pub fn program_names(self) -> &'static [&'static str] {
        match self {
            Self::ClaudeDesktop => &["claude-desktop", "Claude"],
            Self::ClaudeCode => &["claude"],
            Self::Cursor => &["cursor", "Cursor"],
            Self::VsCode => &["code", "code-insiders"],
            Self::Windsurf => &["windsurf", "Windsurf"],
            Self::GeminiCli => &["gemini"],
            Self::CodexCli => &["codex"],
            Self::Zed => &["zed", "zed-editor"],
        }
    }

    /// The key under which the file lists its servers.
    pub fn servers_key(self) -> &'static str {
        match self {
            Self::VsCode => "servers",
            Self::Zed => "context_servers",
            Self::CodexCli => "mcp_servers",
            _ => "mcpServers",
        }
    }

    /// How its config files are written.
    pub fn format(self) -> Format {
        match self {
            Self::VsCode | Self::GeminiCli | Self::Zed => Format::Jsonc,
            Self::CodexCli => Format::Toml,
            _ => Format::Json,
        }
    }

    /// The project-scope file of this host inside `project`, if it has one.
    fn project_file(self, project: &Path) -> Option<PathBuf> {
        let rel = match self {
            Self::ClaudeCode => ".mcp.json",
            Self::Cursor => ".cursor/mcp.json",
            Self::VsCode => ".vscode/mcp.json",
            Self::GeminiCli => ".gemini/settings.json",
            _ => return None,
        };
        Some(project.join(rel))
    }
}

/// The directories a host's user config lives under.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub home: PathBuf,
    /// `~/.config` on Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
    pub config: PathBuf,
    /// `$CODEX_HOME`, when set.
    pub codex_home: Option<PathBuf>,
}

impl Dirs {
    /// This user's, from the environment (`None` without a home directory).
    pub fn from_env() -> Option<Self> {
        let base = directories::BaseDirs::new()?;
        let codex_home = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
        Some(Self { home: base.home_dir().to_owned(), config: base.config_dir().to_owned(), codex_home })
    }

    /// The user-scope config file of `host`.
    pub fn user_file(&self, host: HostKind) -> PathBuf {
        let h = &self.home;
        match host {
            HostKind::ClaudeDesktop => self.config.join("Claude").join("claude_desktop_config.json"),
            HostKind::ClaudeCode => h.join(".claude.json"),
            HostKind::Cursor => h.join(".cursor").join("mcp.json"),
            HostKind::VsCode => self.config.join("Code").join("User").join("mcp.json"),
            HostKind::Windsurf => h.join(".codeium").join("windsurf").join("mcp_config.json"),
            HostKind::GeminiCli => h.join(".gemini").join("settings.json"),
            HostKind::CodexCli => self.codex_home.clone().unwrap_or_else(|| h.join(".codex")).join("config.toml"),
            HostKind::Zed if cfg!(windows) => self.config.join("Zed").join("settings.json"),
            HostKind::Zed => h.join(".config").join("zed").join("settings.json"),
        }
    }
}

/// Every file the hosts read: each host's user file, and its project file in `project` when
/// one is given. Files that do not exist are listed too; the caller looks.
pub fn locations(dirs: &Dirs, project: Option<&Path>) -> Vec<Location> {
    let mut out = Vec::new();
    for host in HostKind::ALL {
        out.push(Location { host, path: dirs.user_file(host), scope: Scope::User, format: host.format() });
        if let Some(file) = project.and_then(|p| host.project_file(p)) {
            let dir = project.map(Path::to_owned).unwrap_or_default();
            out.push(Location { host, path: file, scope: Scope::Project(dir), format: host.format() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs { home: "/home/u".into(), config: "/home/u/.config".into(), codex_home: None }
    }

    #[test]
    fn ids_round_trip() {
        for h in HostKind::ALL {
            assert_eq!(HostKind::from_id(h.id()), Some(h));
        }
        assert_eq!(HostKind::from_id("emacs"), None);
    }

    #[test]
    fn user_files_on_linux() {
        let d = dirs();
        assert_eq!(d.user_file(HostKind::ClaudeCode), Path::new("/home/u/.claude.json"));
        assert_eq!(d.user_file(HostKind::ClaudeDesktop), Path::new("/home/u/.config/Claude/claude_desktop_config.json"));
        assert_eq!(d.user_file(HostKind::VsCode), Path::new("/home/u/.config/Code/User/mcp.json"));
        assert_eq!(d.user_file(HostKind::CodexCli), Path::new("/home/u/.codex/config.toml"));
        let codex = Dirs { codex_home: Some("/opt/codex".into()), ..dirs() };
        assert_eq!(codex.user_file(HostKind::CodexCli), Path::new("/opt/codex/config.toml"));
    }

    #[test]
    fn project_files_only_for_hosts_that_have_them() {
        let all = locations(&dirs(), Some(Path::new("/src/app")));
        let project: Vec<_> = all.iter().filter(|l| matches!(l.scope, Scope::Project(_))).map(|l| l.path.clone()).collect();
        assert_eq!(
            project,
            ["/src/app/.mcp.json", "/src/app/.cursor/mcp.json", "/src/app/.vscode/mcp.json", "/src/app/.gemini/settings.json"].map(PathBuf::from)
        );
        assert_eq!(locations(&dirs(), None).len(), HostKind::ALL.len());
    }
}
