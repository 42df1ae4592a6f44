//! One typed JSON file, read and written the same way for every file of the config dir
//! (`servers.json`, `consent.json`, `hosts.json`, `service.json`).
//!
//! The policy, the same for all of them:
//!
//! - **Missing** file: the type's default (a fresh home has none of them).
//! - **Damaged** file (unreadable, not JSON, not the expected shape): an error naming the
//!   file and the fix ([`FileError::Corrupt`]). It is never reset and never written over:
//!   a reset would silently drop what the user chose (a Deny, a disabled tool).
//! - **Newer** file (its `"version"` is above [`VERSION`]): refused the same way, so an
//!   older build never misreads, or downgrades, what a newer one wrote.
//! - **Writes** are atomic: a private (0600) temporary file in the same directory, synced,
//!   then renamed over the old one. A write over a damaged or newer file is refused.
//!
//! On disk a file is the type's own JSON object with one more field, `"version"`, first.
//! A file without it (all files written before versions existed) reads as version 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

/// The schema version this build writes and the newest it reads.
pub const VERSION: u32 = 1;

/// Why a config file cannot be used. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} is damaged ({reason}); fix it or move it aside, and mcp-broker starts it afresh", shown(.path))]
    Corrupt { path: PathBuf, reason: String },
    #[error("{} was written by a newer mcp-broker (file version {found}, this one reads up to {VERSION}); upgrade mcp-broker", shown(.path))]
    Newer { path: PathBuf, found: u32 },
    #[error("cannot write {}: {source}", shown(.path))]
    Write { path: PathBuf, source: std::io::Error },
}

impl FileError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::Corrupt { path, .. } | Self::Newer { path, .. } | Self::Write { path, .. } => path,
        }
    }
}

/// A path as the user knows it: under the home directory, `~/...`.
fn shown(path: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h.parent().is_some());
    match home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// The part of every file read before its body: its schema version.
#[derive(Deserialize)]
struct Header {
    #[serde(default = "first_version")]
    version: u32,
    /// The body, skipped; being flattened, it also makes only a JSON object a valid file.
    #[serde(flatten)]
    _body: BTreeMap<String, IgnoredAny>,
}

fn first_version() -> u32 {
    1
}

/// What is written: the version, then the body's own fields.
#[derive(Serialize)]
struct Versioned<'a, T> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// A JSON file holding one `T` (a struct: its fields sit beside `"version"`).
#[derive(Debug, Clone)]
pub struct JsonFile<T> {
    path: PathBuf,
    _body: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Default> JsonFile<T> {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), _body: PhantomData }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's content; `T::default()` when there is no file.
    pub fn load(&self) -> Result<T, FileError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => self.parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(self.corrupt(format!("cannot read it: {e}"))),
        }
    }

    /// Replace the file with `value`, atomically. Refused, leaving the file as it is, when
    /// the file there now is damaged or newer: what it holds is the user's to recover.
    pub fn save(&self, value: &T) -> Result<(), FileError> {
        self.load()?;
        self.write(value)
    }

    /// Load, change, save. Not a lock: callers that write from several threads serialize
    /// their updates themselves.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, FileError> {
        let mut value = self.load()?;
        let out = f(&mut value);
        self.write(&value)?;
        Ok(out)
    }

    fn parse(&self, bytes: &[u8]) -> Result<T, FileError> {
        let header: Header = serde_json::from_slice(bytes).map_err(|e| self.corrupt(e.to_string()))?;
        if header.version > VERSION {
            return Err(FileError::Newer { path: self.path.clone(), found: header.version });
        }
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(e.to_string()))
    }

    fn write(&self, value: &T) -> Result<(), FileError> {
        let json = serde_json::to_vec_pretty(&Versioned { version: VERSION, body: value })
            .map_err(|e| FileError::Write { path: self.path.clone(), source: std::io::Error::other(e) })?;
        write_private(&self.path, &json).map_err(|source| FileError::Write { path: self.path.clone(), source })
    }

    fn corrupt(&self, reason: String) -> FileError {
        FileError::Corrupt { path: self.path.clone(), reason }
    }
}

/// Write a file readable by the user only, replacing the old one atomically: the bytes go
/// to a new 0600 file beside it, are synced, and the new file is renamed over the old one.
/// Readers see the old file or the new one, never a part; a failed write leaves no
/// temporary file behind.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = write_new(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(path);
    Ok(())
}

/// A name beside `path` no other writer uses: `.NAME.tmp.PID.N`.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Create `tmp` (it must not exist: never follow a planted link), write and sync it.
fn write_new(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Make the rename itself durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Doc {
        #[serde(default)]
        names: BTreeMap<String, u32>,
        #[serde(default)]
        note: Option<String>,
    }

    fn file(dir: &tempfile::TempDir) -> JsonFile<Doc> {
        JsonFile::new(dir.path().join("doc.json"))
    }

    fn doc() -> Doc {
        Doc { names: [("a".to_owned(), 1)].into(), note: Some("n".into()) }
    }

    fn entries(dir: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn missing_is_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(file(&dir).load().unwrap(), Doc::default());
        assert!(entries(&dir).is_empty(), "loading creates nothing");
    }

    #[test]
    fn round_trip_with_version_first() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        f.save(&doc()).unwrap();
        assert_eq!(f.load().unwrap(), doc());
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(text.starts_with("{\n  \"version\": 1,\n  \"names\""), "{text}");
    }

    #[test]
    fn a_file_without_version_reads_as_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        std::fs::write(f.path(), r#"{"names": {"a": 1}, "note": "n"}"#).unwrap();
        assert_eq!(f.load().unwrap(), doc());
        f.save(&Doc::default()).unwrap();
        assert_eq!(f.load().unwrap(), Doc::default());
    }

    #[test]
    fn damaged_is_an_error_naming_the_file_and_the_fix_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        for garbage in ["{\"names\": {\"a\": 1},\n\n  oops", "[]", "", "{\"names\": 3}", "{\"version\": \"x\"}"] {
            std::fs::write(f.path(), garbage).unwrap();
            let err = f.load().unwrap_err();
            assert!(matches!(err, FileError::Corrupt { .. }), "{garbage:?}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("doc.json is damaged") && msg.contains("move it aside"), "{msg}");
            assert!(f.save(&doc()).is_err(), "a damaged file is not written over");
            assert!(f.update(|d| d.note = None).is_err());
            assert_eq!(std::fs::read_to_string(f.path()).unwrap(), garbage, "the damaged file is untouched");
        }
        assert_eq!(entries(&dir), ["doc.json"], "no temporary file left");
    }

    #[test]
    fn the_parse_error_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        std::fs::write(f.path(), "{\n  \"names\": {},\n  oops\n}").unwrap();
        assert!(f.load().unwrap_err().to_string().contains("line 3"));
    }

    #[test]
    fn a_newer_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let newer = r#"{"version": 2, "names": {}, "what_v2_added": true}"#;
        std::fs::write(f.path(), newer).unwrap();
        let err = f.load().unwrap_err();
        assert!(matches!(err, FileError::Newer { found: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("written by a newer mcp-broker") && err.to_string().contains("upgrade"), "{err}");
        assert!(f.save(&doc()).is_err());
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), newer);
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_is_damaged_too() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        f.save(&doc()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(f.path()).is_ok() {
            return; // run as root: permissions do not apply
        }
        assert!(matches!(f.load(), Err(FileError::Corrupt { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn written_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        std::fs::write(f.path(), "{}").unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        f.save(&doc()).unwrap();
        assert_eq!(std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(f.update(|d| d.names.insert("b".into(), 2)).unwrap(), None);
        assert_eq!(f.load().unwrap().names.len(), 2);
        assert_eq!(entries(&dir), ["doc.json"], "no temporary file left");
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("doc.json");
        std::fs::create_dir(&target).unwrap(); // rename over a directory fails
        assert!(write_private(&target, b"{}").is_err());
        assert_eq!(entries(&dir), ["doc.json"]);
    }

    #[test]
    fn paths_under_home_are_shown_with_a_tilde() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home.filter(|h| h.is_absolute()) {
            assert_eq!(shown(&home.join(".config/mcp-broker/consent.json")), "~/.config/mcp-broker/consent.json");
        }
        assert_eq!(shown(Path::new("/nonexistent-root/x.json")), "/nonexistent-root/x.json");
    }
}
