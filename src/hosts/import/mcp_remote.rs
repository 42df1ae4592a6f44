//! mcp-remote's plaintext store, read: `$MCP_REMOTE_CONFIG_DIR` or `~/.mcp-auth`, one
//! directory per store version (`mcp-remote-0.1.29`, `mcp-remote-v1`, …), in each the files
//! of one server named `<hash>_<file>`: `client_info.json` and `tokens.json` ([`files`]),
//! and what a sign-in or refresh leaves meanwhile (`code_verifier_<state>.txt`,
//! `discovery_state_<state>.json`, `refresh_in_progress.json`, `lock.json`, temp files).
//! [`hash`] says which server a `<hash>` is, [`plan`] what each entry becomes, [`report`] runs
//! an import over the store and says what it did.
//!
//! Reading is never fatal: a file that is not what mcp-remote writes (garbage, too large, a
//! symlink, unreadable) is reported as a [`Problem`] and the rest is still read. Symlinks
//! are refused, not followed: the store is the user's own and holds no links.

pub mod files;
pub mod hash;
pub mod plan;
pub mod report;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use files::{ClientInfo, Tokens};
pub use hash::{candidates, find, server_url_hash, Candidate};
pub use plan::{plan, Grant, Outcome, Planned};
pub use report::{import_all, EntryOutcome, EntryReport, Report};

/// mcp-remote's files are a few hundred bytes; anything past this is not one of them.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The store's root: `$MCP_REMOTE_CONFIG_DIR` (`config_dir`) when set, else `~/.mcp-auth`.
pub fn store_root(config_dir: Option<PathBuf>, home: &Path) -> PathBuf {
    config_dir.filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| home.join(".mcp-auth"))
}

/// The store's root for this process's environment.
pub fn store_root_from_env(home: &Path) -> PathBuf {
    store_root(std::env::var_os("MCP_REMOTE_CONFIG_DIR").map(PathBuf::from), home)
}

/// Everything read from a store.
#[derive(Debug, Default)]
pub struct Store {
    pub entries: Vec<StoreEntry>,
    pub problems: Vec<Problem>,
}

/// The files of one server in one version directory.
#[derive(Debug)]
pub struct StoreEntry {
    /// The version directory's name (`mcp-remote-v1`).
    pub version: String,
    pub hash: String,
    /// `None` when absent or unreadable (then a [`Problem`] says why).
    pub client: Option<ClientInfo>,
    pub tokens: Option<Tokens>,
    /// Every file of this server in that directory, sorted: what `--delete-plaintext` removes.
    pub files: Vec<PathBuf>,
}

/// A file or directory that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

impl Problem {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self { path: path.to_owned(), reason: reason.into() }
    }
}

/// Read the store under `root` (absent: empty).
pub fn read_store(root: &Path) -> Store {
    let mut store = Store::default();
    for dir in version_dirs(root, &mut store.problems) {
        read_version_dir(&dir, &mut store);
    }
    store
}

/// The `mcp-remote-*` directories under `root`, sorted; symlinks refused.
fn version_dirs(root: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            problems.push(Problem::new(root, format!("cannot read it: {e}")));
            return Vec::new();
        }
        Ok(m) if !m.is_dir() => {
            problems.push(Problem::new(root, not_a_dir(&m)));
            return Vec::new();
        }
        Ok(_) => {}
    }
    let mut dirs = Vec::new();
    for path in list(root, problems) {
        if !file_name(&path).starts_with("mcp-remote-") {
            continue;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => dirs.push(path),
            Ok(m) => problems.push(Problem::new(&path, not_a_dir(&m))),
            Err(e) => problems.push(Problem::new(&path, format!("cannot read it: {e}"))),
        }
    }
    dirs
}

fn not_a_dir(m: &std::fs::Metadata) -> &'static str {
    if m.file_type().is_symlink() { "it is a symlink; not followed" } else { "it is not a directory" }
}

/// The entries of `dir`, sorted.
fn list(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(it) => {
            let mut paths: Vec<PathBuf> = it.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            paths
        }
        Err(e) => {
            problems.push(Problem::new(dir, format!("cannot list it: {e}")));
            Vec::new()
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `<32 hex digits>_<rest>` → (hash, rest).
fn split_hash(name: &str) -> Option<(&str, &str)> {
    let (hash, rest) = name.split_once('_')?;
    (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty()).then_some((hash, rest))
}

fn read_version_dir(dir: &Path, store: &mut Store) {
    let version = file_name(dir);
    let mut by_hash: BTreeMap<String, StoreEntry> = BTreeMap::new();
    for path in list(dir, &mut store.problems) {
        let name = file_name(&path);
        let Some((hash, rest)) = split_hash(&name) else { continue };
        let entry = by_hash.entry(hash.to_owned()).or_insert_with(|| StoreEntry {
            version: version.clone(),
            hash: hash.to_owned(),
            client: None,
            tokens: None,
            files: Vec::new(),
        });
        entry.files.push(path.clone());
        match rest {
            "client_info.json" => entry.client = read_json(&path, &mut store.problems),
            "tokens.json" => entry.tokens = read_json(&path, &mut store.problems),
            _ => {}
        }
    }
    store.entries.extend(by_hash.into_values());
}

fn read_json<T: DeserializeOwned>(path: &Path, problems: &mut Vec<Problem>) -> Option<T> {
    let parsed = read_small(path).and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| format!("it is not what mcp-remote writes: {e}")));
    parsed.map_err(|reason| problems.push(Problem::new(path, reason))).ok()
}

/// A regular file's bytes, refusing symlinks (without following them) and large files.
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = open_no_follow(path).map_err(|e| match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => "it is a symlink; not followed".to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("it is larger than {} KiB", MAX_FILE_BYTES / 1024));
    }
    let mut bytes = Vec::new();
    file.by_ref().take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::other("a symlink"));
    }
    std::fs::File::open(path)
}

/// Delete an imported entry's files. Returns the files that could not be deleted, with why.
pub fn delete_entry(entry: &StoreEntry) -> Vec<Problem> {
    entry
        .files
        .iter()
        .filter_map(|f| match std::fs::remove_file(f) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Problem::new(f, format!("cannot delete it: {e}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "15b9982bbc0f6c97e59b3c224d8cad5a";
    const B: &str = "0123456789abcdef0123456789abcdef";
    const CLIENT: &str = r#"{"client_id":"c-1","redirect_uris":["http://localhost:9696/oauth/callback"],"token_endpoint_auth_method":"none"}"#;
    const TOKENS: &str = r#"{"access_token":"at-1","token_type":"Bearer","refresh_token":"rt-1","expires_at":1760003600000}"#;

    fn store(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn every_version_dir_is_read_and_files_grouped_by_hash() {
        let d = store(&[
            (&format!("mcp-remote-v1/{A}_client_info.json"), CLIENT),
            (&format!("mcp-remote-v1/{A}_tokens.json"), TOKENS),
            (&format!("mcp-remote-v1/{A}_code_verifier_s1.txt"), "verifier"),
            (&format!("mcp-remote-0.1.29/{B}_client_info.json"), CLIENT),
            ("mcp-remote-v1/README", "not an entry"),
            ("other/x_tokens.json", TOKENS),
        ]);
        let s = read_store(d.path());
        assert_eq!(s.problems, []);
        let seen: Vec<_> = s.entries.iter().map(|e| (e.version.as_str(), e.hash.as_str(), e.files.len(), e.tokens.is_some())).collect();
        assert_eq!(seen, [("mcp-remote-0.1.29", B, 1, false), ("mcp-remote-v1", A, 3, true)]);
        assert_eq!(s.entries[1].client.as_ref().map(|c| c.client_id.as_str()), Some("c-1"));
    }

    #[test]
    fn garbage_is_reported_and_the_rest_still_read() {
        let d = store(&[
            (&format!("mcp-remote-v1/{A}_client_info.json"), "{not json"),
            (&format!("mcp-remote-v1/{A}_tokens.json"), TOKENS),
            (&format!("mcp-remote-v1/{B}_tokens.json"), r#"{"access_token": 5}"#),
        ]);
        let s = read_store(d.path());
        assert_eq!(s.entries.len(), 2);
        assert!(s.entries.iter().all(|e| e.client.is_none()));
        assert!(s.entries.iter().any(|e| e.tokens.is_some()));
        assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
        assert!(s.problems.iter().all(|p| p.reason.starts_with("it is not what mcp-remote writes")));
    }

    #[test]
    fn a_huge_file_is_not_read() {
        let d = store(&[]);
        let path = d.path().join(format!("mcp-remote-v1/{A}_tokens.json"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::File::create(&path).expect("create").set_len(MAX_FILE_BYTES + 1).expect("grow");
        let s = read_store(d.path());
        assert_eq!(s.problems[0].reason, "it is larger than 1024 KiB");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_not_followed() {
        let elsewhere = store(&[("tokens.json", TOKENS), (&format!("mcp-remote-v2/{B}_tokens.json"), TOKENS)]);
        let d = store(&[(&format!("mcp-remote-v1/{A}_client_info.json"), CLIENT)]);
        std::os::unix::fs::symlink(elsewhere.path().join("tokens.json"), d.path().join(format!("mcp-remote-v1/{A}_tokens.json"))).expect("link");
        std::os::unix::fs::symlink(elsewhere.path().join("mcp-remote-v2"), d.path().join("mcp-remote-v2")).expect("link");
        let s = read_store(d.path());
        assert_eq!(s.entries.len(), 1);
        assert!(s.entries[0].tokens.is_none() && s.entries[0].client.is_some());
        let reasons: Vec<_> = s.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons, ["it is a symlink; not followed", "it is a symlink; not followed"]);
        let linked_root = tempfile::tempdir().expect("temp dir");
        let root = linked_root.path().join("link");
        std::os::unix::fs::symlink(d.path(), &root).expect("link");
        assert!(read_store(&root).entries.is_empty(), "a linked root is refused too");
    }

    #[test]
    fn no_store_is_an_empty_store_and_the_root_follows_the_environment_variable() {
        let d = store(&[]);
        let s = read_store(&d.path().join("absent"));
        assert!(s.entries.is_empty() && s.problems.is_empty());
        assert_eq!(store_root(None, Path::new("/home/u")), Path::new("/home/u/.mcp-auth"));
        assert_eq!(store_root(Some("/x".into()), Path::new("/home/u")), Path::new("/x"));
        assert_eq!(store_root(Some("".into()), Path::new("/home/u")), Path::new("/home/u/.mcp-auth"));
    }

    #[test]
    fn deleting_an_entry_removes_its_files_only() {
        let d = store(&[(&format!("mcp-remote-v1/{A}_tokens.json"), TOKENS), (&format!("mcp-remote-v1/{B}_tokens.json"), TOKENS)]);
        let s = read_store(d.path());
        assert_eq!(delete_entry(&s.entries[1]), []);
        let left = read_store(d.path());
        assert_eq!(left.entries.iter().map(|e| e.hash.as_str()).collect::<Vec<_>>(), [B]);
    }
}
