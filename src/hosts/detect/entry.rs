//! One MCP server entry of a host's config: its typed shape in each host's format, what it
//! runs (the broker already, mcp-remote, a remote URL, a local program), and which of its
//! values look like plaintext secrets (named, never shown).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::mcp_remote::{self, McpRemote};
use crate::secret::Secret;

/// A value that may be of an unexpected type: an entry a host wrote in a shape this code does
/// not know is skipped, not a reason to refuse the whole file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Lenient<T> {
    Known(T),
    Other(serde::de::IgnoredAny),
}

impl<T> Lenient<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(t) => Some(t),
            Self::Other(_) => None,
        }
    }
}

/// A server entry as the JSON hosts write it: the union of their fields (Claude, Cursor,
/// VS Code, Windsurf's `serverUrl`, Gemini's `httpUrl`, Zed's nested `command`).
#[derive(Debug, Default, Deserialize)]
pub struct JsonEntry {
    #[serde(rename = "type")]
    pub transport: Option<String>,
    pub command: Option<Lenient<CommandField>>,
    #[serde(default)]
    pub args: Vec<Lenient<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, Lenient<String>>,
    pub url: Option<String>,
    #[serde(rename = "serverUrl")]
    pub server_url: Option<String>,
    #[serde(rename = "httpUrl")]
    pub http_url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Lenient<String>>,
}

/// `"command": "npx"`, or Zed's `"command": {"path": …, "args": […], "env": {…}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CommandField {
    Line(String),
    Nested {
        path: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
}

/// A `[mcp_servers.NAME]` table of Codex CLI's `config.toml`.
#[derive(Debug, Default, Deserialize)]
pub struct TomlEntry {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
    /// The variable Codex reads a bearer token from, at start.
    pub bearer_token_env_var: Option<String>,
}

/// An entry in one shape, whichever host wrote it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl From<&JsonEntry> for Entry {
    fn from(e: &JsonEntry) -> Self {
        let known = |m: &BTreeMap<String, Lenient<String>>| -> BTreeMap<String, String> {
            m.iter().filter_map(|(k, v)| Some((k.clone(), v.known()?.clone()))).collect()
        };
        let mut entry = Entry {
            command: None,
            args: e.args.iter().filter_map(|a| a.known().cloned()).collect(),
            env: known(&e.env),
            url: e.url.clone().or_else(|| e.server_url.clone()).or_else(|| e.http_url.clone()),
            headers: known(&e.headers),
        };
        match e.command.as_ref().and_then(Lenient::known) {
            Some(CommandField::Line(c)) => entry.command = Some(c.clone()),
            Some(CommandField::Nested { path, args, env }) => {
                entry.command = Some(path.clone());
                entry.args.extend(args.iter().cloned());
                entry.env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            None => {}
        }
        entry
    }
}

impl From<&TomlEntry> for Entry {
    fn from(e: &TomlEntry) -> Self {
        let mut headers = e.http_headers.clone();
        if let Some(var) = &e.bearer_token_env_var {
            headers.insert("Authorization".into(), format!("Bearer ${{{var}}}"));
        }
        Entry { command: e.command.clone(), args: e.args.clone(), env: e.env.clone(), url: e.url.clone(), headers }
    }
}

/// What an entry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Transport {
    /// `mcp-broker connect NAME`: already through the broker.
    Broker { server: String },
    /// mcp-remote in front of a remote server.
    McpRemote(McpRemote),
    /// The host speaks to a remote URL itself.
    Remote { url: String },
    /// A local program over stdio.
    Local { command: String },
    /// Neither a command nor a URL.
    Unknown,
}

impl Entry {
    pub fn transport(&self) -> Transport {
        if let Some(command) = &self.command {
            if let Some(server) = broker_server(command, &self.args) {
                return Transport::Broker { server };
            }
            if let Some(remote) = mcp_remote::parse(command, &self.args) {
                return Transport::McpRemote(remote);
            }
            return Transport::Local { command: command.clone() };
        }
        match &self.url {
            Some(url) => Transport::Remote { url: url.clone() },
            None => Transport::Unknown,
        }
    }

    /// Where this entry holds what looks like a secret in plaintext (`headers.Authorization`,
    /// `env.GITHUB_TOKEN`, `--header X-Api-Key`): names only.
    pub fn plaintext_secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for (name, value) in &self.headers {
            if secret_name(name) && plaintext(value) {
                found.push(format!("headers.{name}"));
            }
        }
        for (name, value) in &self.env {
            if secret_name(name) && plaintext(value) {
                found.push(format!("env.{name}"));
            }
        }
        if let Transport::McpRemote(r) = self.transport() {
            found.extend(r.headers.iter().filter(|(n, v)| secret_name(n) && plaintext(v)).map(|(n, _)| format!("--header {n}")));
            if r.static_client_info.as_deref().is_some_and(|i| i.contains("client_secret")) {
                found.push("--static-oauth-client-info client_secret".to_owned());
            }
        }
        found
    }
}

/// What an entry itself sends a remote server besides the MCP messages: its static headers
/// (`headers`, or mcp-remote's `--header` values, which may name `${VAR}`s of its `env`),
/// with their values. Values may be keys: `Debug` prints the names only.
#[derive(Clone, Default)]
pub struct Sends {
    pub headers: Vec<(String, Secret)>,
    pub env: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Sends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sends")
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a local entry runs, with its `env` (values may be keys: `Debug` prints names only).
#[derive(Clone, Default)]
pub struct Local {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("command", &self.command).field("args", &self.args.len()).field("env", &self.env.keys().collect::<Vec<_>>()).finish()
    }
}

impl Entry {
    /// What a local entry runs (empty for other entries).
    pub fn local(&self) -> Local {
        let Transport::Local { command } = self.transport() else { return Local::default() };
        Local { command, args: self.args.clone(), env: self.env.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect() }
    }

    /// What a remote entry sends (nothing for other entries).
    pub fn sends(&self) -> Sends {
        let headers: Vec<(String, String)> = match self.transport() {
            Transport::Remote { .. } => self.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect(),
            Transport::McpRemote(r) => r.headers,
            _ => return Sends::default(),
        };
        Sends {
            headers: headers.into_iter().map(|(n, v)| (n, Secret::new(v))).collect(),
            env: self.env.iter().map(|(n, v)| (n.clone(), Secret::new(v.clone()))).collect(),
        }
    }
}

/// `mcp-broker connect NAME [flags]` → NAME.
fn broker_server(command: &str, args: &[String]) -> Option<String> {
    let base = command.rsplit(['/', '\\']).next().unwrap_or(command);
    if !matches!(base, "mcp-broker" | "mcp-broker.exe") || args.first().map(String::as_str) != Some("connect") {
        return None;
    }
    args.get(1).cloned()
}

/// A header or variable name that usually carries a credential.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper == "AUTHORIZATION"
        || upper == "COOKIE"
        || upper.split(|c: char| !c.is_ascii_alphanumeric()).any(|part| {
            matches!(
                part,
                "TOKEN" | "KEY" | "SECRET" | "PASSWORD" | "PASSWD" | "CREDENTIAL" | "CREDENTIALS" | "PAT" | "AUTH" | "APIKEY" | "ACCESSKEY" | "AUTHTOKEN"
            )
        })
}

/// A value written out, not a reference to a variable (`${VAR}`, `${env:VAR}`, `$VAR`,
/// VS Code's `${input:id}`).
pub fn plaintext(value: &str) -> bool {
    let v = value.trim();
    let reference = v.contains("${") || v.strip_prefix('$').is_some_and(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    !v.is_empty() && !reference
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Entry {
        Entry::from(&serde_json::from_str::<JsonEntry>(text).expect("an entry"))
    }

    #[test]
    fn each_transport() {
        assert_eq!(json(r#"{"command":"mcp-broker","args":["connect","linear"]}"#).transport(), Transport::Broker { server: "linear".into() });
        assert!(matches!(json(r#"{"command":"npx","args":["-y","mcp-remote","https://mcp.linear.app/mcp"]}"#).transport(), Transport::McpRemote(r) if r.url == "https://mcp.linear.app/mcp"));
        assert_eq!(json(r#"{"type":"http","url":"https://a.example/mcp"}"#).transport(), Transport::Remote { url: "https://a.example/mcp".into() });
        assert_eq!(json(r#"{"serverUrl":"https://w.example/mcp"}"#).transport(), Transport::Remote { url: "https://w.example/mcp".into() });
        assert_eq!(json(r#"{"httpUrl":"https://g.example/mcp"}"#).transport(), Transport::Remote { url: "https://g.example/mcp".into() });
        assert_eq!(json(r#"{"command":"uvx","args":["mcp-server-git"]}"#).transport(), Transport::Local { command: "uvx".into() });
        assert_eq!(json(r#"{"disabled":true}"#).transport(), Transport::Unknown);
    }

    #[test]
    fn zed_nested_command() {
        let e = json(r#"{"command":{"path":"npx","args":["mcp-remote","https://z.example/mcp"],"env":{"A":"1"}},"settings":{}}"#);
        assert!(matches!(e.transport(), Transport::McpRemote(_)));
        assert_eq!(e.env.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn codex_table() {
        let t: TomlEntry = toml::from_str("command = \"npx\"\nargs = [\"-y\", \"mcp-remote\", \"https://c.example/mcp\"]\n[env]\nAPI_KEY = \"sk-1\"\n").expect("toml");
        let e = Entry::from(&t);
        assert!(matches!(e.transport(), Transport::McpRemote(_)));
        assert_eq!(e.plaintext_secrets(), ["env.API_KEY"]);
    }

    #[test]
    fn odd_values_are_skipped_not_fatal() {
        let e = json(r#"{"command":"node","args":["a",7,"b"],"env":{"N":3,"GITHUB_TOKEN":"ghp_x"}}"#);
        assert_eq!(e.args, ["a", "b"]);
        assert_eq!(e.plaintext_secrets(), ["env.GITHUB_TOKEN"]);
    }

    #[test]
    fn secrets_are_named_references_are_not() {
        let e = json(
            r#"{"url":"https://a.example/mcp","headers":{"Authorization":"Bearer sk-live-1","X-Api-Key":"${input:key}","Accept":"application/json"},
               "env":{"GITHUB_PERSONAL_ACCESS_TOKEN":"ghp_1","OPENAI_API_KEY":"$OPENAI_API_KEY","DEBUG":"1","MONKEY":"banana"}}"#,
        );
        assert_eq!(e.plaintext_secrets(), ["headers.Authorization", "env.GITHUB_PERSONAL_ACCESS_TOKEN"]);
        let r = json(r#"{"command":"npx","args":["mcp-remote","https://a.example/mcp","--header","Authorization: Bearer abc"]}"#);
        assert_eq!(r.plaintext_secrets(), ["--header Authorization"]);
        let r = json(r#"{"command":"npx","args":["mcp-remote","https://a.example/mcp","--header","Authorization:${AUTH_HEADER}"]}"#);
        assert!(r.plaintext_secrets().is_empty());
    }

    #[test]
    fn secret_names() {
        for yes in ["Authorization", "x-api-key", "GITHUB_TOKEN", "SLACK_BOT_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "APIKEY", "GITLAB_PAT"] {
            assert!(secret_name(yes), "{yes}");
        }
        for no in ["PATH", "DEBUG", "MONKEY", "Accept", "NODE_ENV", "PATTERN"] {
            assert!(!secret_name(no), "{no}");
        }
    }
}
