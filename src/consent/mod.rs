//! Consent: which host may use which server, and which of its tools.
//!
//! - First-use approval: while a UI is attached (it polled the approvals within the last
//!   [`UI_PRESENCE`]), a host's first request to a server waits for the user's decision
//!   (Allow once / Always / Deny); with no UI, use is allowed — the user's own host
//!   configuration is the consent. Kept decisions and tool policies live in
//!   `consent.json` in the config dir.
//! - Tool policy: tools disabled per host × server (applied to `tools/list` answers by
//!   [`crate::mcp::tools`]).
//! - A damaged `consent.json` fails closed: it may hold Deny decisions and disabled tools,
//!   so while it cannot be read every check of every host is refused with the reason, every
//!   tool counts as disabled, and nothing is saved over it. It is read again at each check:
//!   once the user fixes it (or moves it aside), consent works again without a restart.


use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::vault::{FileError, JsonFile};


/// A tool a server listed, as the policy view shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ToolInfo {
    pub name: String,
    pub description: Option<String>,
}

/// How recently a UI must have polled to count as attached.
pub const UI_PRESENCE: Duration = Duration::from_secs(5);
/// How long a host's request waits for the user to answer.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Once,
    Always,
    Deny,
}

/// A decision kept for a host × server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecisionRecord {
    pub host: String,
    pub server: String,
    pub decision: Decision,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// A request waiting for the user (also the control API's `GET /v1/approvals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: u64,
    pub host: String,
    pub server: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

/// A consent change that was not saved, and why (`consent.json` is damaged, or the disk
/// refused the write).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the consent change was not saved: {0}")]
pub struct NotSaved(pub String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("{host} may not use {server}: denied in mcp-broker (change it in the mcp-broker window)")]
    Denied { host: String, server: String },
    #[error("{host} may not use {server}: nobody answered the approval prompt in mcp-broker within {secs} s")]
    Unanswered { host: String, server: String, secs: u64 },
    #[error("the tool {tool:?} of {server} is disabled for {host} in mcp-broker")]
    ToolDisabled { host: String, server: String, tool: String },
    /// `consent.json` cannot be read; `problem` names it and the fix.
    #[error("{host} may not use {server}: {problem}")]
    Damaged { host: String, server: String, problem: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConsentFile {
    #[serde(default)]
    decisions: Vec<DecisionRecord>,
    /// `host\u{0}server` → disabled tool names.
    #[serde(default)]
    disabled_tools: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Default)]
struct Live {
    file: ConsentFile,
    /// Why `consent.json` cannot be used; while set, every check is refused and nothing is saved.
    damaged: Option<String>,
    once: HashSet<(String, String)>,
    pending: Vec<(Approval, Vec<oneshot::Sender<Decision>>)>,
    next_id: u64,
    ui_seen: Option<Instant>,
    /// The tools each server listed last (unfiltered), for the policy view.
    tools: HashMap<String, Vec<ToolInfo>>,
}

/// Decisions, approvals and tool policies of one home.
pub struct Consent {
    file: JsonFile<ConsentFile>,
    live: Mutex<Live>,
}

fn pair_key(host: &str, server: &str) -> String {
    format!("{host}\u{0}{server}")
}

impl Consent {
    /// Open the consent of a home. Never fails: a damaged file is kept as a problem
    /// ([`Self::problem`]) and every check is refused until it is fixed.
    pub fn open(config_dir: &Path) -> Self {
        let file = JsonFile::new(config_dir.join("consent.json"));
        let mut live = Live::default();
        match file.load() {
            Ok(kept) => live.file = kept,
            Err(e) => {
                tracing::error!("{e}; until then every host is refused");
                live.damaged = Some(e.to_string());
            }
        }
        Self { file, live: Mutex::new(live) }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is wrong with `consent.json`, if anything (see [`Self::recheck`]).
    pub fn problem(&self) -> Option<String> {
        self.recheck(&mut self.live())
    }

    /// The damage, after reading a damaged file again: a fixed (or removed) file is taken
    /// as it is now. A healthy file is not read: what is in memory is what was saved.
    fn recheck(&self, live: &mut Live) -> Option<String> {
        if live.damaged.is_some() {
            match self.file.load() {
                Ok(kept) => {
                    tracing::info!("{} can be read again", self.file.path().display());
                    live.file = kept;
                    live.damaged = None;
                }
                Err(e) => live.damaged = Some(e.to_string()),
            }
        }
        live.damaged.clone()
    }

    /// Save what is in memory, unless the file is damaged: then, or when the save finds it
    /// damaged (or newer) now, nothing is written and consent fails closed.
    fn save(&self, live: &mut Live) -> Result<(), NotSaved> {
        if let Some(problem) = &live.damaged {
            return Err(NotSaved(problem.clone()));
        }
        if let Err(e) = self.file.save(&live.file) {
            if !matches!(e, FileError::Write { .. }) {
                live.damaged = Some(e.to_string());
            }
            return Err(NotSaved(e.to_string()));
        }
        Ok(())
    }

    /// Refuse a change up front while the file is damaged (memory and file stay as they are).
    fn writable(&self, live: &mut Live) -> Result<(), NotSaved> {
        match self.recheck(live) {
            Some(problem) => Err(NotSaved(problem)),
            None => Ok(()),
        }
    }

    /// May `host` use `server`? Waits for the user when a UI is attached and nothing was
    /// decided yet; allows when no UI is attached.
    pub async fn check(&self, host: &str, server: &str, scopes: impl FnOnce() -> Vec<String>) -> Result<(), Refused> {
        let rx = {
            let mut live = self.live();
            if let Some(problem) = self.recheck(&mut live) {
                return Err(Refused::Damaged { host: host.into(), server: server.into(), problem });
            }
            match decided(&live, host, server) {
                Some(Decision::Deny) => return Err(Refused::Denied { host: host.into(), server: server.into() }),
                Some(_) => return Ok(()),
                None if !ui_attached(&live) => return Ok(()),
                None => enqueue(&mut live, host, server, &scopes()),
            }
        };
        match tokio::time::timeout(APPROVAL_TIMEOUT, rx).await {
            Ok(Ok(Decision::Deny)) => Err(Refused::Denied { host: host.into(), server: server.into() }),
            Ok(Ok(_)) => Ok(()),
            _ => Err(Refused::Unanswered { host: host.into(), server: server.into(), secs: APPROVAL_TIMEOUT.as_secs() }),
        }
    }

    /// What a UI shows; calling it marks the UI as attached.
    pub fn approvals(&self) -> (Vec<Approval>, Vec<DecisionRecord>) {
        let mut live = self.live();
        live.ui_seen = Some(Instant::now());
        let pending = live.pending.iter().map(|(a, _)| a.clone()).collect();
        let mut decisions = live.file.decisions.clone();
        decisions.extend(live.once.iter().map(|(h, s)| DecisionRecord { host: h.clone(), server: s.clone(), decision: Decision::Once, decided_at: OffsetDateTime::now_utc() }));
        (pending, decisions)
    }

    /// The user's answer to approval `id`.
    /// `Ok(false)`: no such approval is pending.
    pub fn decide(&self, id: u64, decision: Decision) -> Result<bool, NotSaved> {
        let mut live = self.live();
        if decision != Decision::Once {
            self.writable(&mut live)?;
        }
        let Some(pos) = live.pending.iter().position(|(a, _)| a.id == id) else { return Ok(false) };
        let (approval, waiters) = live.pending.remove(pos);
        let (host, server) = (approval.host, approval.server);
        if decision == Decision::Once {
            live.once.insert((host, server));
        } else {
            live.file.decisions.retain(|d| !(d.host == host && d.server == server));
            live.file.decisions.push(DecisionRecord { host, server, decision, decided_at: OffsetDateTime::now_utc() });
            // Not saved (the disk failed): the decision still holds until the service stops.
            if let Err(e) = self.save(&mut live) {
                tracing::warn!("{e}");
            }
        }
        for w in waiters {
            let _ = w.send(decision);
        }
        Ok(true)
    }

    /// Forget the decision for `host` × `server`: the host will be asked again.
    pub fn revoke(&self, host: &str, server: &str) -> Result<(), NotSaved> {
        let mut live = self.live();
        self.writable(&mut live)?;
        live.once.remove(&(host.to_owned(), server.to_owned()));
        live.file.decisions.retain(|d| !(d.host == host && d.server == server));
        self.save(&mut live)
    }

    /// Whether `tool` is disabled for `host` × `server`; every tool is while the file is damaged.
    pub fn tool_disabled(&self, host: &str, server: &str, tool: &str) -> bool {
        let live = self.live();
        live.damaged.is_some() || live.file.disabled_tools.get(&pair_key(host, server)).is_some_and(|s| s.contains(tool))
    }

    /// The disabled tools of `host` × `server`.
    pub fn disabled_tools(&self, host: &str, server: &str) -> BTreeSet<String> {
        self.live().file.disabled_tools.get(&pair_key(host, server)).cloned().unwrap_or_default()
    }

    pub fn set_disabled_tools(&self, host: &str, server: &str, disabled: BTreeSet<String>) -> Result<(), NotSaved> {
        let mut live = self.live();
        self.writable(&mut live)?;
        if disabled.is_empty() {
            live.file.disabled_tools.remove(&pair_key(host, server));
        } else {
            live.file.disabled_tools.insert(pair_key(host, server), disabled);
        }
        self.save(&mut live)
    }

    pub fn remember_tools(&self, server: &str, tools: Vec<ToolInfo>) {
        self.live().tools.insert(server.to_owned(), tools);
    }

    /// The tools `server` listed last, with whether each is enabled for `host`.
    pub fn tools(&self, host: &str, server: &str) -> Vec<(ToolInfo, bool)> {
        let live = self.live();
        let disabled = live.file.disabled_tools.get(&pair_key(host, server));
        let known = live.tools.get(server).cloned().unwrap_or_default();
        let mut out: Vec<(ToolInfo, bool)> = known.into_iter().map(|t| {
            let on = !disabled.is_some_and(|d| d.contains(&t.name));
            (t, on)
        }).collect();
        // Disabled tools the server has not listed since the service started still show.
        for name in disabled.into_iter().flatten() {
            if !out.iter().any(|(t, _)| &t.name == name) {
                out.push((ToolInfo { name: name.clone(), description: None }, false));
            }
        }
        out
    }
}

fn decided(live: &Live, host: &str, server: &str) -> Option<Decision> {
    if live.once.contains(&(host.to_owned(), server.to_owned())) {
        return Some(Decision::Once);
    }
    live.file.decisions.iter().find(|d| d.host == host && d.server == server).map(|d| d.decision)
}

fn ui_attached(live: &Live) -> bool {
    live.ui_seen.is_some_and(|t| t.elapsed() < UI_PRESENCE)
}

/// Add a waiter to the pending approval for this pair, creating it if needed: one prompt
/// however many requests wait.
fn enqueue(live: &mut Live, host: &str, server: &str, scopes: &[String]) -> oneshot::Receiver<Decision> {
    let (tx, rx) = oneshot::channel();
    if let Some((_, waiters)) = live.pending.iter_mut().find(|(a, _)| a.host == host && a.server == server) {
        waiters.push(tx);
        return rx;
    }
    live.next_id += 1;
    let approval = Approval { id: live.next_id, host: host.into(), server: server.into(), scopes: scopes.to_vec(), requested_at: OffsetDateTime::now_utc() };
    live.pending.push((approval, vec![tx]));
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn consent() -> (Consent, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mcpb-consent-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        (Consent::open(&dir), dir)
    }

    #[tokio::test]
    async fn no_ui_allows_and_ui_asks_once_for_many() {
        let (c, dir) = consent();
        assert!(c.check("cursor", "linear", Vec::new).await.is_ok());
        c.approvals(); // a UI polls
        let c = std::sync::Arc::new(c);
        let waiters: Vec<_> = (0..3).map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.check("cursor", "linear", || vec!["read".into()]).await })
        }).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (pending, _) = c.approvals();
        assert_eq!(pending.len(), 1, "one prompt for three requests");
        assert!(c.decide(pending[0].id, Decision::Deny).unwrap());
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Err(Refused::Denied { .. })));
        }
        assert!(c.check("cursor", "linear", Vec::new).await.is_err(), "deny is kept");
        c.revoke("cursor", "linear").unwrap();
        let again = Consent::open(&dir);
        assert!(again.check("cursor", "linear", Vec::new).await.is_ok(), "revoked, and no UI now");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn tool_policy_persists() {
        let (c, dir) = consent();
        c.set_disabled_tools("cursor", "linear", ["delete".to_owned()].into()).unwrap();
        assert!(Consent::open(&dir).tool_disabled("cursor", "linear", "delete"));
        assert!(!c.tool_disabled("vscode", "linear", "delete"));
        std::fs::remove_dir_all(dir).ok();
    }

    const GARBAGE: &str = "{\"decisions\": [{\"host\": \"cursor\", \"server\": \"linear\", \"decision\": \"deny\"";

    fn is_damaged(r: Result<(), Refused>) -> bool {
        matches!(&r, Err(Refused::Damaged { problem, .. }) if problem.contains("consent.json is damaged"))
            && r.unwrap_err().to_string().starts_with("cursor may not use linear: ")
    }

    #[tokio::test]
    async fn a_damaged_file_fails_closed_and_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consent.json");
        std::fs::write(&path, GARBAGE).unwrap();
        let c = Consent::open(dir.path());
        assert!(is_damaged(c.check("cursor", "linear", Vec::new).await), "no UI: still refused");
        c.approvals(); // a UI polls
        assert!(is_damaged(c.check("cursor", "linear", Vec::new).await), "UI attached: refused, not asked");
        assert!(c.approvals().0.is_empty(), "no prompt while the file is damaged");
        assert!(c.tool_disabled("cursor", "linear", "anything"));
        assert!(c.revoke("cursor", "linear").unwrap_err().to_string().contains("consent.json is damaged"), "the change is refused, said so");
        assert!(c.set_disabled_tools("cursor", "linear", BTreeSet::new()).is_err());
        assert!(c.problem().is_some_and(|p| p.contains("move it aside")));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), GARBAGE, "untouched");

        std::fs::remove_file(&path).unwrap(); // the user moves it aside
        assert_eq!(c.problem(), None);
        c.set_disabled_tools("cursor", "linear", ["delete".to_owned()].into()).unwrap();
        assert!(Consent::open(dir.path()).tool_disabled("cursor", "linear", "delete"), "started afresh, saved again");
    }

    #[tokio::test]
    async fn a_fixed_file_is_taken_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consent.json");
        std::fs::write(&path, GARBAGE).unwrap();
        let c = Consent::open(dir.path());
        assert!(is_damaged(c.check("cursor", "linear", Vec::new).await));
        std::fs::write(&path, format!("{GARBAGE}, \"decided_at\": \"2026-01-01T00:00:00Z\"}}]}}")).unwrap();
        assert_eq!(c.check("cursor", "linear", Vec::new).await, Err(Refused::Denied { host: "cursor".into(), server: "linear".into() }), "the kept Deny holds");
        assert!(c.check("vscode", "linear", Vec::new).await.is_ok());
    }

    #[tokio::test]
    async fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("consent.json"), "{\"version\": 9, \"decisions\": []}").unwrap();
        let c = Consent::open(dir.path());
        let err = c.check("cursor", "linear", Vec::new).await.unwrap_err();
        assert!(err.to_string().contains("written by a newer mcp-broker"), "{err}");
    }

    #[tokio::test]
    async fn a_file_damaged_while_running_is_not_written_over_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consent.json");
        let c = Consent::open(dir.path());
        assert!(c.check("cursor", "linear", Vec::new).await.is_ok());
        std::fs::write(&path, GARBAGE).unwrap();
        assert!(c.set_disabled_tools("cursor", "linear", ["delete".to_owned()].into()).is_err(), "the save was refused, and said so");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), GARBAGE, "the save was refused");
        assert!(is_damaged(c.check("cursor", "linear", Vec::new).await));
    }
}
