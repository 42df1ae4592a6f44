//! Local programs with secrets in their config (`hosts connect --include-local`): a stdio
//! server the host starts itself, with a key in its `env` (`"GITHUB_TOKEN": "ghp_…"`). The
//! secret values move to the keychain (one item per entry, [`env_account`]); the entry runs
//! `mcp-broker run ID -- COMMAND ARGS…`, which starts the same program with those values put
//! back into its environment. The entry's other `env` values stay in the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::hosts::detect::entry::{plaintext, secret_name};
use crate::hosts::detect::{DetectedServer, HostKind};
use crate::secret::Secret;

/// The keychain account that holds a local entry's secret `env` values (a JSON object).
pub fn env_account(id: &str) -> String {
    format!("local-env:{id}")
}

/// The keychain item of a local entry's secret `env` values: a JSON object.
pub fn encode_env(env: &BTreeMap<String, Secret>) -> Secret {
    let values: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    Secret::new(serde_json::to_string(&values).unwrap_or_default())
}

/// The values [`encode_env`] kept; `None` when the item is damaged.
pub fn decode_env(item: &Secret) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(item.expose()).ok()
}

/// The id `mcp-broker run` is given: host and entry, so two hosts' entries of one name differ.
pub fn run_id(host: HostKind, entry: &str) -> String {
    format!("{}/{}", host.id(), super::keys::server_name(entry))
}

/// What a local entry hands over: its secret `env` values, and the rest of its `env`.
#[derive(Debug, Clone)]
pub struct TakenEnv {
    pub id: String,
    pub secrets: BTreeMap<String, Secret>,
    pub kept: BTreeMap<String, String>,
}

/// Sort a local entry's `env`; `None` when it holds no secret (then it is left alone).
pub fn take(host: HostKind, server: &DetectedServer) -> Option<TakenEnv> {
    let (secrets, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
        server.local.env.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, v)| secret_name(k) && plaintext(v.expose()));
    if secrets.is_empty() {
        return None;
    }
    Some(TakenEnv { id: run_id(host, &server.name), secrets, kept: kept.into_iter().map(|(k, v)| (k, v.expose().to_owned())).collect() })
}

/// The new entry: `mcp-broker run ID -- COMMAND ARGS…`, with the env values that are not secret.
#[derive(Debug, Serialize)]
pub struct RunEntry {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    command: String,
    args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
}

impl RunEntry {
    pub fn new(host: HostKind, exe: &Path, server: &DetectedServer, taken: &TakenEnv) -> Self {
        let transport = matches!(host, HostKind::ClaudeCode | HostKind::VsCode).then_some("stdio");
        let mut args = vec!["run".to_owned(), taken.id.clone(), "--".to_owned(), server.local.command.clone()];
        args.extend(server.local.args.iter().cloned());
        Self { transport, command: exe.to_string_lossy().into_owned(), args, env: taken.kept.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::detect::entry::{Entry, JsonEntry};

    fn server(json: &str) -> DetectedServer {
        let entry = Entry::from(&serde_json::from_str::<JsonEntry>(json).expect("entry"));
        DetectedServer {
            name: "git hub".into(),
            project: None,
            transport: entry.transport(),
            plaintext_secrets: entry.plaintext_secrets(),
            sends: entry.sends(),
            local: entry.local(),
        }
    }

    #[test]
    fn secret_env_values_are_taken_the_rest_kept() {
        let s = server(r#"{"command":"npx","args":["-y","@modelcontextprotocol/server-github"],"env":{"GITHUB_TOKEN":"ghp_1","DEBUG":"1","OTHER_KEY":"${KEY}"}}"#);
        let t = take(HostKind::ClaudeCode, &s).expect("taken");
        assert_eq!(t.id, "claude-code/git-hub");
        assert_eq!(t.secrets.keys().collect::<Vec<_>>(), ["GITHUB_TOKEN"]);
        assert_eq!(t.kept, BTreeMap::from([("DEBUG".to_owned(), "1".to_owned()), ("OTHER_KEY".to_owned(), "${KEY}".to_owned())]));
        let entry = serde_json::to_string(&RunEntry::new(HostKind::ClaudeCode, Path::new("/b/mcp-broker"), &s, &t)).expect("json");
        assert_eq!(
            entry,
            r#"{"type":"stdio","command":"/b/mcp-broker","args":["run","claude-code/git-hub","--","npx","-y","@modelcontextprotocol/server-github"],"env":{"DEBUG":"1","OTHER_KEY":"${KEY}"}}"#
        );
        assert!(!entry.contains("ghp_1"));
    }

    #[test]
    fn the_keychain_item_reads_back() {
        let env = BTreeMap::from([("A_TOKEN".to_owned(), Secret::new("x\"y"))]);
        assert_eq!(decode_env(&encode_env(&env)), Some(BTreeMap::from([("A_TOKEN".to_owned(), "x\"y".to_owned())])));
        assert_eq!(decode_env(&Secret::new("[")), None);
    }

    #[test]
    fn no_secret_no_change() {
        assert!(take(HostKind::Cursor, &server(r#"{"command":"uvx","args":["mcp-server-git"],"env":{"DEBUG":"1"}}"#)).is_none());
    }
}
