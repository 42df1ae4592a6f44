//! Switching a host to the broker, and back: each chosen remote entry of a host's config
//! (mcp-remote in front of a URL, or a URL the host speaks to itself) becomes
//! `mcp-broker connect URL` over stdio, so the host's file holds no secret and the broker
//! signs in, refreshes and audits for it. Only the chosen entries' bytes change
//! ([`splice`] for JSON, [`toml_splice`] for Codex CLI's TOML); undoing puts each entry's
//! original bytes back.
//!
//! 1. [`plan`]: what would change, and what is left alone and why (local programs, entries
//!    already through the broker, entries holding a plaintext secret the broker cannot take,
//!    TOML entries in a shape no byte range holds alone).
//! 2. [`write`]: the new text, written atomically over the file with its mode kept, after a
//!    timestamped private backup, refusing a symbolic link and a file that changed since it
//!    was read.
//! 3. [`undo`]: the text with each connected entry put back, where the host has not changed
//!    it since.
//!
//! An entry that sends a key in a static header becomes one of the broker's API-key servers
//! ([`keys`]): the key leaves the file for the keychain, and so does the entry's old text.
//! With `include_local`, so do the secret `env` values of local programs ([`local`]).

pub mod keys;
pub mod local;
pub mod splice;
pub mod toml_splice;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::detect::{DetectedConfig, DetectedServer, Format, HostKind, Location};
use super::detect::entry::Transport;
use crate::broker::api_keys::KeyHeader;
use crate::secret::Secret;
use keys::Headers;
use splice::EntryPath;

/// Which of a file's entries to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Every remote entry.
    All,
    /// These, by name.
    Servers(Vec<String>),
}

/// One entry to rewrite: its bytes before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub project: Option<String>,
    pub url: String,
    /// The entry's old text; with each secret marked ([`keys::MARK`]) when it sent a key.
    pub before: String,
    pub after: String,
    /// mcp-remote flags and headers the broker does not carry over.
    #[serde(default)]
    pub not_carried: Vec<String>,
    /// The broker's API-key server that now holds the key this entry sent in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed: Option<String>,
    /// The `mcp-broker run` id whose keychain item holds this local program's secret `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_env: Option<String>,
    /// The key and the exact old text, until they are in the keychain (never serialized).
    #[serde(skip)]
    pub taken: Option<Taken>,
}

/// What an entry that sent a key hands to the keychain.
#[derive(Debug, Clone)]
pub struct Taken {
    pub headers: Vec<KeyHeader>,
    /// A local program's secret `env` values.
    pub env: std::collections::BTreeMap<String, Secret>,
    /// The entry's exact old text: `disconnect` puts it back from the keychain.
    pub exact_before: Secret,
}

impl Change {
    /// Whether the entry's old text held a secret (then it is kept in the keychain).
    pub fn held_secret(&self) -> bool {
        self.keyed.is_some() || self.local_env.is_some()
    }

    /// The entry's text as it stands in the file before the change.
    pub fn exact_before(&self) -> &str {
        self.taken.as_ref().map_or(&self.before, |t| t.exact_before.expose())
    }

    /// The keychain account of an entry's exact old text (`disconnect` reads it back).
    pub fn entry_account(&self, path: &Path) -> String {
        format!("host-entry:{}#{}#{}", path.display(), self.project.as_deref().unwrap_or(""), self.name)
    }
}

/// An entry left as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What connecting one file would do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub host: HostKind,
    pub path: PathBuf,
    /// The file as it was read: [`write`] refuses if it is not that any more.
    pub original: String,
    pub changes: Vec<Change>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{path}: {why}")]
    Unusable { path: PathBuf, why: String },
    #[error("{0} is a symbolic link; connect the file it points to instead")]
    Symlink(PathBuf),
    #[error("{0} changed since it was read (is the host running and saving it?); nothing was written: run the command again")]
    Changed(PathBuf),
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Plan the switch of `config`'s chosen entries to `mcp-broker connect` (run as `exe`).
pub fn plan(location: &Location, config: &DetectedConfig, choice: &Choice, exe: &Path, include_local: bool) -> Result<Plan, ConnectError> {
    let unusable = |why: String| ConnectError::Unusable { path: location.path.clone(), why };
    if let Some(e) = &config.error {
        return Err(unusable(e.clone()));
    }
    let original = std::fs::read_to_string(&location.path).map_err(|e| unusable(e.to_string()))?;
    let mut plan = Plan { host: location.host, path: location.path.clone(), original, changes: Vec::new(), skipped: Vec::new() };
    if let Choice::Servers(names) = choice {
        if let Some(missing) = names.iter().find(|n| !config.servers.iter().any(|s| &s.name == *n)) {
            return Err(unusable(format!("it has no server {missing:?}")));
        }
    }
    for server in config.servers.iter().filter(|s| chosen(choice, s)) {
        let skip = |reason| Skipped { name: server.name.clone(), reason };
        let rewritten = match rewrite(location.host, server, exe, include_local) {
            Ok(r) => r,
            Err(reason) => {
                plan.skipped.push(skip(reason));
                continue;
            }
        };
        let path = entry_path(location.host, server);
        let range = match find(location.format, &plan.original, &path) {
            Ok(range) => range,
            Err(Unfound::Entry(reason)) => {
                plan.skipped.push(skip(reason));
                continue;
            }
            Err(Unfound::File(why)) => return Err(unusable(why)),
        };
        let before = &plan.original[range];
        match render(location.format, before, &path, &rewritten.entry).and_then(|after| rewritten.into_change(server, before, after)) {
            Ok(c) => plan.changes.push(c),
            Err(reason) => plan.skipped.push(skip(reason)),
        }
    }
    Ok(plan)
}

fn chosen(choice: &Choice, server: &DetectedServer) -> bool {
    match choice {
        Choice::All => true,
        Choice::Servers(names) => names.contains(&server.name),
    }
}

fn entry_path(host: HostKind, server: &DetectedServer) -> EntryPath {
    EntryPath { servers_key: host.servers_key(), project: server.project.clone(), name: server.name.clone() }
}

/// An entry's new text, and the key it hands to the broker.
struct Rewritten {
    url: String,
    entry: NewEntry,
    not_carried: Vec<String>,
    /// The API-key server's name and the key, when the entry sent one.
    key: Option<(String, keys::TakenKey)>,
    /// A local program's secret `env`.
    env: Option<local::TakenEnv>,
}

impl Rewritten {
    /// The change, given the entry's exact old text.
    fn into_change(self, server: &DetectedServer, exact: &str, after: String) -> Result<Change, String> {
        let mut change = Change {
            name: server.name.clone(),
            project: server.project.clone(),
            url: self.url,
            before: exact.to_owned(),
            after,
            not_carried: self.not_carried,
            keyed: None,
            local_env: None,
            taken: None,
        };
        let mut taken = Taken { headers: Vec::new(), env: Default::default(), exact_before: Secret::new(exact) };
        if let Some((name, key)) = self.key {
            change.before = keys::redact(exact, &key.pieces)?;
            change.keyed = Some(name);
            taken.headers = key.headers;
        } else if let Some(env) = self.env {
            change.before = keys::redact(exact, &env.secrets.values().cloned().collect::<Vec<_>>())?;
            change.local_env = Some(env.id);
            taken.env = env.secrets;
        } else {
            return Ok(change);
        }
        change.taken = Some(taken);
        Ok(change)
    }
}

/// The new entry for `server`, or why it stays as it is.
fn rewrite(host: HostKind, server: &DetectedServer, exe: &Path, include_local: bool) -> Result<Rewritten, String> {
    let (url, mut not_carried) = match &server.transport {
        Transport::Broker { .. } => return Err("already through mcp-broker".into()),
        Transport::Local { command } if !include_local => {
            let hint = if local::take(host, server).is_some() { " (--include-local moves the secrets in its env to the keychain)" } else { "" };
            return Err(format!("a local program ({command}), left alone{hint}"));
        }
        Transport::Local { command } => return rewrite_local(host, server, exe, command),
        Transport::Unknown => return Err("neither a command nor a URL".into()),
        Transport::McpRemote(r) => {
            let mut not_carried = r.not_carried.clone();
            // The broker asks for the resource the server's metadata names (RFC 9728).
            if r.resource.as_ref().is_some_and(|res| res.trim_end_matches('/') != r.url.trim_end_matches('/')) {
                not_carried.push("--resource".into());
            }
            (r.url.clone(), not_carried)
        }
        Transport::Remote { url } => (url.clone(), Vec::new()),
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    let key = match keys::take(&server.sends)? {
        Headers::Key(key) => Some((keys::server_name(&server.name), key)),
        Headers::Plain(names) => {
            not_carried.extend(names.into_iter().map(|n| format!("header {n}")));
            None
        }
        Headers::None => None,
    };
    // A secret the broker does not take (an `env` value of a remote entry's own) stays put.
    if key.is_none() {
        if let Some(first) = server.plaintext_secrets.first() {
            return Err(format!("it holds a plaintext secret ({first}) that is not a header the broker can send; left as it is"));
        }
    }
    let target = key.as_ref().map_or(url.as_str(), |(name, _)| name.as_str());
    let mut entry = StdioEntry::new(host, exe, target);
    if let Transport::McpRemote(r) = &server.transport {
        if let Some(info) = &r.static_client_info {
            entry.args.extend(["--client-id".to_owned(), static_client_id(info)?]);
        }
    }
    Ok(Rewritten { url, entry: NewEntry::Stdio(entry), not_carried, key, env: None })
}

/// The client id of mcp-remote's `--static-oauth-client-info` (inline JSON or `@file`): a
/// pre-registered public client the broker signs in with. One with a secret is left, since
/// the secret cannot go on `mcp-broker connect`'s command line.
fn static_client_id(info: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        client_id: String,
        client_secret: Option<serde::de::IgnoredAny>,
    }
    let text = match info.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|e| format!("cannot read its --static-oauth-client-info file {file}: {e}"))?,
        None => info.to_owned(),
    };
    let info: Info = serde_json::from_str(&text).map_err(|e| format!("its --static-oauth-client-info is not a client's JSON ({e}); left as it is"))?;
    if info.client_secret.is_some() {
        return Err("its --static-oauth-client-info holds a client secret: sign in with `mcp-broker login URL --client-id ID --client-secret-env VAR`, then connect the entry by hand".into());
    }
    Ok(info.client_id)
}

/// A local program with secrets in its `env`: `mcp-broker run` starts it with them.
fn rewrite_local(host: HostKind, server: &DetectedServer, exe: &Path, command: &str) -> Result<Rewritten, String> {
    let Some(env) = local::take(host, server) else {
        return Err(format!("a local program ({command}) with no secret in its env, left alone"));
    };
    if host.format() == Format::Toml {
        return Err(format!("a local program ({command}) with secrets in its env: --include-local does not rewrite TOML yet; left alone"));
    }
    let entry = NewEntry::Run(local::RunEntry::new(host, exe, server, &env));
    Ok(Rewritten { url: format!("local: {command}"), entry, not_carried: Vec::new(), key: None, env: Some(env) })
}

/// What an entry becomes.
enum NewEntry {
    /// `mcp-broker connect …`.
    Stdio(StdioEntry),
    /// `mcp-broker run ID -- …` (JSON files only).
    Run(local::RunEntry),
}

/// Why an entry's bytes were not found: the file cannot be used, or only this entry.
enum Unfound {
    File(String),
    Entry(String),
}

impl Unfound {
    fn reason(self) -> String {
        match self {
            Self::File(why) | Self::Entry(why) => why,
        }
    }
}

/// The byte range of the entry at `path`, in the file's format.
fn find(format: Format, text: &str, path: &EntryPath) -> Result<Range<usize>, Unfound> {
    match format {
        Format::Json | Format::Jsonc => splice::find(text, path).map_err(|e| Unfound::File(e.to_string())),
        Format::Toml => match toml_splice::find(text, path) {
            Ok(spot) => Ok(spot.range),
            Err(e @ toml_splice::TomlSpliceError::Unsafe(_)) => Err(Unfound::Entry(e.to_string())),
            Err(e) => Err(Unfound::File(e.to_string())),
        },
    }
}

/// The text of `entry` that replaces `before`, in the file's format (for TOML, in `before`'s shape).
fn render(format: Format, before: &str, path: &EntryPath, entry: &NewEntry) -> Result<String, String> {
    match (format, entry) {
        (Format::Json | Format::Jsonc, NewEntry::Stdio(e)) => one_line(e),
        (Format::Json | Format::Jsonc, NewEntry::Run(e)) => one_line(e),
        (Format::Toml, NewEntry::Stdio(e)) => Ok(toml_splice::render(before, path, &e.command, &e.args, e.env_vars)),
        (Format::Toml, NewEntry::Run(_)) => Err("a local program's entry is not written in TOML yet; left alone".into()),
    }
}

/// Whether `replacement` can stand where `current` is: a TOML table cannot replace an inline
/// table (a host that rewrote the entry in the other shape keeps it).
fn fits(format: Format, current: &str, replacement: &str) -> bool {
    format != Format::Toml || toml_splice::shape(current) == toml_splice::shape(replacement)
}

/// `value` as JSON on one line, the way a person writes a short entry.
fn one_line(value: &impl Serialize) -> Result<String, String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, OneLine);
    value.serialize(&mut ser).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// JSON on one line with a space after each `:` and `,`, as people write a short entry
/// (serde_json has compact and multi-line pretty output only).
struct OneLine;

impl serde_json::ser::Formatter for OneLine {
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
}

/// The entry every host runs: `mcp-broker connect URL|NAME --host HOST` over stdio.
#[derive(Debug, Serialize)]
struct StdioEntry {
    /// Claude Code and VS Code name the transport.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    command: String,
    args: Vec<String>,
    /// Codex CLI's `env_vars`: the variables it passes on (the JSON hosts pass them all).
    #[serde(skip)]
    env_vars: &'static [&'static str],
}

/// The variables the bridge needs that Codex CLI does not pass to the programs it starts (it
/// passes HOME, PATH, LANG, SHELL and TERM only): the broker's home and directories, the
/// session bus of the keychain, and the display a sign-in on first use opens the browser on.
/// Names only; Codex passes those that are set.
const CODEX_ENV_VARS: &[&str] = &[
    "MCP_BROKER_HOME",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "BROWSER",
];

impl StdioEntry {
    fn new(host: HostKind, exe: &Path, server: &str) -> Self {
        let transport = matches!(host, HostKind::ClaudeCode | HostKind::VsCode).then_some("stdio");
        let args = vec!["connect".into(), server.to_owned(), "--host".into(), host.id().to_owned()];
        let env_vars = if host == HostKind::CodexCli { CODEX_ENV_VARS } else { &[] };
        Self { transport, command: exe.to_string_lossy().into_owned(), args, env_vars }
    }
}

impl Plan {
    /// The file's text after the changes.
    pub fn new_text(&self) -> Result<String, ConnectError> {
        let unusable = |why| ConnectError::Unusable { path: self.path.clone(), why };
        let mut text = self.original.clone();
        for c in &self.changes {
            text = swap(&text, self.host, c, c.exact_before(), &c.after).map_err(unusable)?;
        }
        if self.host.format() == Format::Toml {
            // The splice keeps the file TOML; this makes sure nothing else is written.
            toml_splice::check(&text).map_err(|e| unusable(format!("after the rewrite {e}; nothing was written")))?;
        }
        Ok(text)
    }

    /// The file as it was, with the keys of entries that sent one marked: the backup, which
    /// must not keep what connecting takes out of the file.
    pub fn backup_text(&self) -> Result<String, ConnectError> {
        let mut text = self.original.clone();
        for c in self.changes.iter().filter(|c| c.held_secret()) {
            text = swap(&text, self.host, c, c.exact_before(), &c.before).map_err(|why| ConnectError::Unusable { path: self.path.clone(), why })?;
        }
        Ok(text)
    }

    /// A readable diff of the plan's changes.
    pub fn diff(&self) -> String {
        diff(&self.changes)
    }
}

/// A readable diff: each changed entry's lines before and after.
pub fn diff(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!("  {}:\n", c.name));
        out.extend(c.before.lines().map(|l| format!("  - {l}\n")));
        out.extend(c.after.lines().map(|l| format!("  + {l}\n")));
    }
    out
}

/// `text` with `change`'s entry replaced by `to`, if it is now `from`.
fn swap(text: &str, host: HostKind, change: &Change, from: &str, to: &str) -> Result<String, String> {
    let path = EntryPath { servers_key: host.servers_key(), project: change.project.clone(), name: change.name.clone() };
    let format = host.format();
    let range = find(format, text, &path).map_err(Unfound::reason)?;
    let current = &text[range.clone()];
    if current != from && !same_value(format, current, from) {
        return Err(format!("the entry {:?} changed since mcp-broker connected it; left as it is", change.name));
    }
    if !fits(format, current, to) {
        return Err(format!("the entry {:?} was rewritten in another shape since mcp-broker connected it; left as it is", change.name));
    }
    Ok(splice::replace(text, range, to))
}

/// Whether two entry texts hold the same value: hosts rewrite their own config (Claude Code
/// pretty-prints `~/.claude.json` at each start), so an entry may come back re-formatted.
fn same_value(format: Format, a: &str, b: &str) -> bool {
    if format == Format::Toml {
        return toml_splice::same_value(a, b);
    }
    let parse = |t: &str| jsonc_parser::parse_to_serde_value::<Option<serde_json::Value>>(t, &super::detect::jsonc_options()).ok().flatten();
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

/// `text` with each of `changes` put back as it was, where the host has not changed it since;
/// the entries that could not be put back, with the reason.
pub fn undo(host: HostKind, text: &str, changes: &[Change]) -> (String, Vec<Skipped>) {
    let mut out = text.to_owned();
    let mut skipped = Vec::new();
    for c in changes {
        match swap(&out, host, c, &c.after, c.exact_before()) {
            Ok(t) => out = t,
            Err(reason) => skipped.push(Skipped { name: c.name.clone(), reason }),
        }
    }
    (out, skipped)
}

/// Write `new_text` over `path` if the file is still `expected`: a private backup (`backup`,
/// the file as it was with any key taken out of it marked) in `backups` first, then a
/// temporary file beside it with the same mode, renamed over it. Returns the backup's path.
pub fn write(path: &Path, expected: &str, backup: &str, new_text: &str, backups: &Path) -> Result<PathBuf, ConnectError> {
    let io = |e| ConnectError::Io(path.to_owned(), e);
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(ConnectError::Symlink(path.to_owned()));
    }
    if std::fs::read(path).map_err(io)? != expected.as_bytes() {
        return Err(ConnectError::Changed(path.to_owned()));
    }
    let backup_file = backup_path(path, backups);
    crate::vault::write_private(&backup_file, backup.as_bytes()).map_err(|e| ConnectError::Io(backup_file.clone(), e))?;
    let tmp = path.with_extension(format!("mcp-broker-tmp.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.set_permissions(meta.permissions())?;
        f.write_all(new_text.as_bytes())?;
        f.sync_all()?;
        // The last look: a host that saved the file meanwhile keeps its version.
        if std::fs::read(path)? != expected.as_bytes() {
            return Err(std::io::Error::other("changed"));
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(if e.to_string() == "changed" { ConnectError::Changed(path.to_owned()) } else { io(e) });
    }
    Ok(backup_file)
}

/// `<backups>/<file name>.<UTC time>.bak`
fn backup_path(path: &Path, backups: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!("{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z", now.year(), u8::from(now.month()), now.day(), now.hour(), now.minute(), now.second(), now.nanosecond());
    backups.join(format!("{name}.{stamp}.bak"))
}

#[cfg(test)]
mod toml_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::detect::{self, Scope};

    const CLAUDE: &str = r#"{
  "numStartups": 12,
  "mcpServers": {
    "linear": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "mcp-remote", "https://mcp.linear.app/mcp?q=\":,", "--ignore-tool", "x"]
    },
    "git": { "type": "stdio", "command": "uvx", "args": ["mcp-server-git"] },
    "api": { "type": "http", "url": "https://api.example/mcp", "headers": { "Authorization": "Bearer sk-1" } },
    "docs": { "type": "http", "url": "https://docs.example/mcp" }
  },
  "tipsHistory": { "a": 1 }
}
"#;

    struct Fixture {
        dir: tempfile::TempDir,
        location: Location,
    }

    fn fixture(text: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(".claude.json");
        std::fs::write(&path, text).expect("write");
        let location = Location { host: HostKind::ClaudeCode, path, scope: Scope::User, format: Format::Json };
        Fixture { dir, location }
    }

    fn planned(f: &Fixture, choice: &Choice) -> Plan {
        let config = detect::read_location(&f.location);
        plan(&f.location, &config, choice, Path::new("/usr/bin/mcp-broker"), false).expect("a plan")
    }

    #[test]
    fn plans_the_remote_entries_and_says_why_others_stay() {
        let f = fixture(CLAUDE);
        let p = planned(&f, &Choice::All);
        let changed: Vec<_> = p.changes.iter().map(|c| (c.name.as_str(), c.url.as_str(), c.keyed.as_deref())).collect();
        assert_eq!(
            changed,
            [("api", "https://api.example/mcp", Some("api")), ("docs", "https://docs.example/mcp", None), ("linear", "https://mcp.linear.app/mcp?q=\":,", None)]
        );
        assert!(p.changes[2].after.contains(r#""connect", "https://mcp.linear.app/mcp?q=\":,", "--host""#), "{}", p.changes[2].after);
        assert_eq!(p.changes[2].not_carried, ["--ignore-tool"]);
        let skipped: Vec<_> = p.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["git"]);
        // The entry that sends a key: it runs the broker's server by name, its key is marked.
        let api = &p.changes[0];
        assert_eq!(api.after, r#"{"type": "stdio", "command": "/usr/bin/mcp-broker", "args": ["connect", "api", "--host", "claude-code"]}"#);
        assert!(api.before.contains(keys::MARK) && !api.before.contains("sk-1") && api.exact_before().contains("Bearer sk-1"));
        assert!(!serde_json::to_string(api).unwrap().contains("sk-1"), "the ledger's copy");
        assert_eq!(
            p.changes[1].after,
            r#"{"type": "stdio", "command": "/usr/bin/mcp-broker", "args": ["connect", "https://docs.example/mcp", "--host", "claude-code"]}"#
        );
    }

    #[test]
    fn connect_then_undo_is_byte_for_byte() {
        let f = fixture(CLAUDE);
        let p = planned(&f, &Choice::All);
        let new_text = p.new_text().expect("new text");
        let backup = write(&f.location.path, &p.original, &p.original, &new_text, f.dir.path()).expect("written");
        assert_eq!(std::fs::read_to_string(&backup).expect("backup"), CLAUDE);
        let now = std::fs::read_to_string(&f.location.path).expect("read");
        assert!(now.contains("\"numStartups\": 12") && now.contains("\"tipsHistory\": { \"a\": 1 }") && !now.contains("mcp-remote"));
        // What a host reads now: every remote entry runs the broker.
        let again = detect::read_location(&f.location);
        let through: Vec<_> = again.servers.iter().filter(|s| matches!(s.transport, Transport::Broker { .. })).map(|s| s.name.as_str()).collect();
        assert_eq!(through, ["api", "docs", "linear"]);
        // Connecting again changes nothing.
        assert!(planned(&f, &Choice::All).changes.is_empty());
        let (restored, skipped) = undo(HostKind::ClaudeCode, &now, &p.changes);
        assert!(skipped.is_empty());
        assert_eq!(restored, CLAUDE);
    }

    #[test]
    fn undo_leaves_an_entry_the_host_changed() {
        let f = fixture(CLAUDE);
        let p = planned(&f, &Choice::Servers(vec!["docs".into()]));
        let edited = p.new_text().expect("text").replace("--host\", \"claude-code\"", "--host\", \"me\"");
        let (restored, skipped) = undo(HostKind::ClaudeCode, &edited, &p.changes);
        assert_eq!(restored, edited);
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn unknown_server_names_are_refused() {
        let f = fixture(CLAUDE);
        let config = detect::read_location(&f.location);
        let err = plan(&f.location, &config, &Choice::Servers(vec!["nope".into()]), Path::new("/b"), false).expect_err("refused");
        assert!(err.to_string().contains("no server \"nope\""), "{err}");
    }

    #[test]
    fn broken_file_is_refused_before_anything() {
        let f = fixture("{\"mcpServers\": ");
        let config = detect::read_location(&f.location);
        let err = plan(&f.location, &config, &Choice::All, Path::new("/b"), false).expect_err("refused");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_written() {
        let f = fixture(CLAUDE);
        let p = planned(&f, &Choice::All);
        std::fs::write(&f.location.path, CLAUDE.replace("12", "13")).expect("the host saves");
        let err = write(&f.location.path, &p.original, &p.original, &p.new_text().expect("text"), f.dir.path()).expect_err("refused");
        assert!(matches!(err, ConnectError::Changed(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&f.location.path).expect("read"), CLAUDE.replace("12", "13"), "the host's version stays");
    }

    #[test]
    fn a_symlink_is_refused_and_the_mode_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let f = fixture(CLAUDE);
        let link = f.dir.path().join("link.json");
        std::os::unix::fs::symlink(&f.location.path, &link).expect("symlink");
        let p = planned(&f, &Choice::All);
        let err = write(&link, &p.original, &p.original, "{}", f.dir.path()).expect_err("refused");
        assert!(matches!(err, ConnectError::Symlink(_)), "{err}");
        std::fs::set_permissions(&f.location.path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let backup = write(&f.location.path, &p.original, &p.original, &p.new_text().expect("text"), f.dir.path()).expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&f.location.path), mode(&backup)), (0o640, 0o600));
    }

    #[test]
    fn vscode_and_project_scopes_and_toml() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mcp.json");
        let text = "{\n  // work\n  \"servers\": { \"gh\": { \"type\": \"http\", \"url\": \"https://gh.example/mcp\" }, },\n}\n";
        std::fs::write(&path, text).expect("write");
        let location = Location { host: HostKind::VsCode, path, scope: Scope::User, format: Format::Jsonc };
        let p = plan(&location, &detect::read_location(&location), &Choice::All, Path::new("/b"), false).expect("plan");
        let new_text = p.new_text().expect("text");
        assert!(new_text.starts_with("{\n  // work\n  \"servers\": { \"gh\": {\"type\": \"stdio\", \"command\": \"/b\"") && new_text.ends_with("\"vs-code\"]}, },\n}\n"), "{new_text}");
        let toml = Location { host: HostKind::CodexCli, path: dir.path().join("config.toml"), scope: Scope::User, format: Format::Toml };
        std::fs::write(&toml.path, "").expect("write");
        assert!(plan(&toml, &detect::read_location(&toml), &Choice::All, Path::new("/b"), false).expect("an empty file").changes.is_empty());
    }

    #[test]
    fn undo_finds_an_entry_the_host_reformatted() {
        let f = fixture(CLAUDE);
        let config = detect::read_location(&f.location);
        let plan = plan(&f.location, &config, &Choice::Servers(vec!["docs".into()]), Path::new("/bin/mcp-broker"), false).unwrap();
        let connected = plan.new_text().unwrap();
        // The host pretty-prints the whole file, as Claude Code does.
        let v: serde_json::Value = serde_json::from_str(&connected).unwrap();
        let reformatted = serde_json::to_string_pretty(&v).unwrap();
        let (back, skipped) = undo(HostKind::ClaudeCode, &reformatted, &plan.changes);
        assert!(skipped.is_empty(), "{skipped:?}");
        let back: serde_json::Value = serde_json::from_str(&back).unwrap();
        let original: serde_json::Value = serde_json::from_str(CLAUDE).unwrap();
        assert_eq!(back["mcpServers"]["docs"], original["mcpServers"]["docs"]);
    }
}

#[cfg(test)]
mod static_client_tests {
    use super::static_client_id;

    #[test]
    fn a_public_static_client_is_carried_a_confidential_one_is_not() {
        assert_eq!(static_client_id(r#"{"client_id":"pre-1"}"#).as_deref(), Ok("pre-1"));
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("client.json");
        std::fs::write(&file, r#"{"client_id":"from-file","redirect_uris":[]}"#).expect("write");
        assert_eq!(static_client_id(&format!("@{}", file.display())).as_deref(), Ok("from-file"));
        assert!(static_client_id(r#"{"client_id":"c","client_secret":"s"}"#).expect_err("secret").contains("--client-secret-env"));
        assert!(static_client_id("{").is_err());
    }
}
