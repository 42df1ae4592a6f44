//! Adopting a host in one step, and letting it go: `connect` rewrites the remote entries of
//! every config file a host reads ([`super::connect`]) and keeps what it changed in a
//! ledger (`host-connections.json` in the config dir); `disconnect` puts those entries back
//! from the ledger, byte for byte where the host has not touched them since.
//!
//! Running it twice changes nothing the second time (connected entries are already through
//! the broker). A host that is running is named, since it reads its config only at start.
//!
//! An entry that sends a key is handed to a [`Keeper`] first: the key becomes an API-key
//! server of the broker and the entry's exact old text goes to the keychain, before the file
//! is written; the ledger and the backups hold that text with the key marked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::connect::{self, Change, Choice, ConnectError, Plan, Skipped, Taken};
use super::detect::{self, Dirs, HostKind, Location};
use crate::broker::api_keys::KeyHeader;
use crate::vault::{JsonFile, SecretStore};

/// Where connecting puts what it takes out of a host's files, and disconnecting finds it.
pub trait Keeper {
    /// Make `server` (at `url`) one of the broker's API-key servers, sending `headers`.
    fn keep_key(&self, server: &str, url: &str, headers: &[KeyHeader]) -> Result<(), String>;
    /// The keychain, for the entries' old texts.
    fn secrets(&self) -> &dyn SecretStore;
}

/// What one connect or disconnect did (or, with `dry_run`, would do) to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub changed: Vec<Changed>,
    pub skipped: Vec<Skipped>,
    /// Each changed entry's lines before and after.
    pub diff: String,
    /// The copy of the file as it was, when it was written.
    pub backup: Option<PathBuf>,
}

/// One entry that was (or would be) rewritten.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub name: String,
    pub url: String,
    /// mcp-remote flags the broker does not carry over.
    pub not_carried: Vec<String>,
    /// The API-key server that holds the key the entry sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyed: Option<String>,
    /// The `mcp-broker run` id whose keychain item holds a local program's secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_env: Option<String>,
}

/// What a connect or disconnect of one host did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: HostKind,
    pub dry_run: bool,
    pub files: Vec<FileReport>,
    /// The host's programs running now (they read their config at start), `None` when this
    /// platform cannot tell.
    pub running: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("no config file of {host} found (looked at {looked})")]
    NoConfig { host: &'static str, looked: String },
    #[error("{host} lists no server named {name:?}; see `mcp-broker hosts detect`")]
    NoServer { host: &'static str, name: String },
    #[error("{host} was not connected by mcp-broker; nothing to undo")]
    NotConnected { host: &'static str },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The ledger of what `hosts connect` changed cannot be used (the backups in
    /// `host-backups/` still hold every file as it was).
    #[error(transparent)]
    Ledger(#[from] crate::vault::FileError),
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The ledger: every connected file, with the entries changed in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(default)]
    pub connections: Vec<Connection>,
}

/// What one `hosts connect` changed in one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub host: HostKind,
    pub path: PathBuf,
    pub changes: Vec<Change>,
    pub backup: PathBuf,
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
}

/// How to connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Show what would change; write and keep nothing.
    pub dry_run: bool,
    /// Take local programs' secret `env` values into the keychain too.
    pub include_local: bool,
}

/// Where a home keeps what adopting needs.
#[derive(Debug, Clone)]
pub struct Adopter {
    pub dirs: Dirs,
    /// A project directory whose project-scope files count too.
    pub project: Option<PathBuf>,
    /// The broker's config dir: the ledger, and `host-backups/`.
    pub config_dir: PathBuf,
    /// The `mcp-broker` the rewritten entries run.
    pub exe: PathBuf,
}

impl Adopter {
    fn ledger_path(&self) -> PathBuf {
        self.config_dir.join("host-connections.json")
    }

    fn ledger_file(&self) -> JsonFile<Ledger> {
        JsonFile::new(self.ledger_path())
    }

    fn backups(&self) -> PathBuf {
        self.config_dir.join("host-backups")
    }

    /// The backups folder, readable by the user only (the copies may hold secrets).
    fn ensure_backups(&self) -> Result<PathBuf, AdoptError> {
        let dir = self.backups();
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(|e| AdoptError::Io(dir.clone(), e))?;
        Ok(dir)
    }

    pub fn ledger(&self) -> Result<Ledger, AdoptError> {
        Ok(self.ledger_file().load()?)
    }

    fn save_ledger(&self, ledger: &Ledger) -> Result<(), AdoptError> {
        Ok(self.ledger_file().save(ledger)?)
    }

    /// The config files of `host` that exist here.
    fn files_of(&self, host: HostKind) -> Result<Vec<Location>, AdoptError> {
        let all: Vec<Location> = detect::catalog::locations(&self.dirs, self.project.as_deref()).into_iter().filter(|l| l.host == host).collect();
        let found: Vec<Location> = all.iter().filter(|l| l.path.is_file()).cloned().collect();
        if found.is_empty() {
            let looked = all.iter().map(|l| l.path.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(AdoptError::NoConfig { host: host.display_name(), looked });
        }
        Ok(found)
    }

    /// Switch `host`'s chosen remote entries to the broker, in every file it reads.
    pub fn connect(&self, host: HostKind, choice: &Choice, dry_run: bool, keeper: &dyn Keeper) -> Result<Report, AdoptError> {
        self.connect_with(host, choice, &Options { dry_run, include_local: false }, keeper)
    }

    /// [`Self::connect`], with local programs' secrets taken too when `options` say so.
    pub fn connect_with(&self, host: HostKind, choice: &Choice, options: &Options, keeper: &dyn Keeper) -> Result<Report, AdoptError> {
        let dry_run = options.dry_run;
        let files = self.files_of(host)?;
        let configs: Vec<_> = files.iter().map(|l| (l, detect::read_location(l))).collect();
        if let Choice::Servers(names) = choice {
            if let Some(name) = names.iter().find(|n| !configs.iter().any(|(_, c)| c.servers.iter().any(|s| &s.name == *n))) {
                return Err(AdoptError::NoServer { host: host.display_name(), name: name.clone() });
            }
        }
        let mut ledger = if dry_run { Ledger::default() } else { self.ledger()? };
        let mut reports = Vec::new();
        for (location, config) in &configs {
            let here = match choice {
                Choice::All => Choice::All,
                Choice::Servers(names) => Choice::Servers(names.iter().filter(|n| config.servers.iter().any(|s| &s.name == *n)).cloned().collect()),
            };
            if matches!(&here, Choice::Servers(n) if n.is_empty()) {
                continue;
            }
            let mut plan = connect::plan(location, config, &here, &self.exe, options.include_local)?;
            if !dry_run {
                hand_over(&mut plan, keeper);
            }
            let mut report = file_report(&plan.path, &plan.changes, plan.skipped.clone(), plan.diff());
            if !dry_run && !plan.changes.is_empty() {
                let backup = connect::write(&plan.path, &plan.original, &plan.backup_text()?, &plan.new_text()?, &self.ensure_backups()?)?;
                ledger.connections.push(Connection {
                    host,
                    path: plan.path.clone(),
                    changes: plan.changes.clone(),
                    backup: backup.clone(),
                    connected_at: OffsetDateTime::now_utc(),
                });
                self.save_ledger(&ledger)?;
                report.backup = Some(backup);
            }
            reports.push(report);
        }
        Ok(Report { host, dry_run, files: reports, running: running(host) })
    }

    /// Put back every entry `connect` changed in `host`'s files (the keys it took, from the
    /// keychain; the API-key servers it made stay).
    pub fn disconnect(&self, host: HostKind, dry_run: bool, keeper: &dyn Keeper) -> Result<Report, AdoptError> {
        let mut ledger = self.ledger()?;
        let (mine, others): (Vec<Connection>, Vec<Connection>) = ledger.connections.drain(..).partition(|c| c.host == host);
        if mine.is_empty() {
            return Err(AdoptError::NotConnected { host: host.display_name() });
        }
        ledger.connections = others;
        let mut reports = Vec::new();
        // The newest first, so entries connected twice come back in order.
        for c in mine.into_iter().rev() {
            let (report, kept) = self.undo_one(&c, dry_run, keeper)?;
            if let Some(kept) = kept {
                ledger.connections.push(kept);
            }
            reports.push(report);
        }
        if !dry_run {
            self.save_ledger(&ledger)?;
        }
        Ok(Report { host, dry_run, files: reports, running: running(host) })
    }

    /// Undo one connection; what could not be undone stays in the ledger.
    fn undo_one(&self, c: &Connection, dry_run: bool, keeper: &dyn Keeper) -> Result<(FileReport, Option<Connection>), AdoptError> {
        let current = match std::fs::read_to_string(&c.path) {
            Ok(t) => t,
            Err(e) => {
                let skipped = c.changes.iter().map(|ch| Skipped { name: ch.name.clone(), reason: format!("cannot read the file: {e}") }).collect();
                return Ok((file_report(&c.path, &[], skipped, String::new()), Some(c.clone())));
            }
        };
        let (changes, mut skipped) = take_back(&c.path, &c.changes, keeper);
        let (text, undone_skipped) = connect::undo(c.host, &current, &changes);
        skipped.extend(undone_skipped);
        let restored: Vec<Change> = c.changes.iter().filter(|ch| !skipped.iter().any(|s| s.name == ch.name)).map(swap_sides).collect();
        let diff = connect::diff(&restored);
        let mut report = file_report(&c.path, &restored, skipped.clone(), diff);
        if !dry_run && !restored.is_empty() {
            report.backup = Some(connect::write(&c.path, &current, &current, &text, &self.ensure_backups()?)?);
            for ch in restored.iter().filter(|ch| ch.held_secret()) {
                // Back in the file: the keychain's copies are not needed any more.
                let _ = keeper.secrets().delete(&ch.entry_account(&c.path));
                if let Some(id) = &ch.local_env {
                    let _ = keeper.secrets().delete(&connect::local::env_account(id));
                }
            }
        }
        let left: Vec<Change> = c.changes.iter().filter(|ch| skipped.iter().any(|s| s.name == ch.name)).cloned().collect();
        let kept = (!left.is_empty()).then(|| Connection { changes: left, ..c.clone() });
        Ok((report, kept))
    }
}

/// Keep, for each change that takes a key, its old text and then the key; a change whose
/// key cannot be kept is dropped from the plan with the reason, and its entry stays.
fn hand_over(plan: &mut Plan, keeper: &dyn Keeper) {
    for c in std::mem::take(&mut plan.changes) {
        match keep(&plan.path, &c, keeper) {
            Ok(()) => plan.changes.push(c),
            Err(reason) => plan.skipped.push(Skipped { name: c.name.clone(), reason }),
        }
    }
}

fn keep(path: &Path, c: &Change, keeper: &dyn Keeper) -> Result<(), String> {
    let Some(taken) = &c.taken else { return Ok(()) };
    let locked = |e| format!("cannot keep its secrets in the keychain: {e}; left as it is");
    keeper.secrets().set(&c.entry_account(path), &taken.exact_before).map_err(locked)?;
    if let Some(id) = &c.local_env {
        keeper.secrets().set(&connect::local::env_account(id), &connect::local::encode_env(&taken.env)).map_err(locked)?;
    }
    match &c.keyed {
        Some(server) => keeper.keep_key(server, &c.url, &taken.headers).map_err(|e| format!("cannot make it the broker's server {server}: {e}; left as it is")),
        None => Ok(()),
    }
}

/// The changes with the exact old text of each keyed entry back from the keychain; those
/// whose text is not there are left, with the reason.
fn take_back(path: &Path, changes: &[Change], keeper: &dyn Keeper) -> (Vec<Change>, Vec<Skipped>) {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    for c in changes {
        if !c.held_secret() {
            ready.push(c.clone());
            continue;
        }
        match keeper.secrets().get(&c.entry_account(path)) {
            Ok(Some(exact)) => ready.push(Change { taken: Some(Taken { headers: Vec::new(), env: Default::default(), exact_before: exact }), ..c.clone() }),
            Ok(None) => skipped.push(Skipped { name: c.name.clone(), reason: "its old text (with its key) is no longer in the keychain; left as it is".into() }),
            Err(e) => skipped.push(Skipped { name: c.name.clone(), reason: format!("cannot read its old text from the keychain: {e}; left as it is") }),
        }
    }
    (ready, skipped)
}

/// A change read backwards (for the diff of an undo).
fn swap_sides(c: &Change) -> Change {
    Change { before: c.after.clone(), after: c.before.clone(), ..c.clone() }
}

fn file_report(path: &Path, changes: &[Change], skipped: Vec<Skipped>, diff: String) -> FileReport {
    let changed = changes.iter().map(|c| Changed { name: c.name.clone(), url: c.url.clone(), not_carried: c.not_carried.clone(), keyed: c.keyed.clone(), local_env: c.local_env.clone() })
        .collect();
    FileReport { path: path.to_owned(), changed, skipped, diff, backup: None }
}

fn running(host: HostKind) -> Option<Vec<String>> {
    crate::platform::programs::running(host.program_names())
}

#[cfg(test)]
mod tests;
