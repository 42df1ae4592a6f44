//! An import run over a whole store and what it says: for each entry, imported as NAME, not
//! matched (its hash), not importable, or failed (why); with `delete` the files of an entry
//! are removed only once its import was proved, and every plaintext file left is named.
//!
//! The import itself is the caller's (the CLI sends it to the service), so this runs and is
//! tested with any function that imports one grant.

use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;

use super::{delete_entry, plan, Candidate, Grant, Outcome, Problem, Store, StoreEntry};

/// What an import run did, `--json`'s answer.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The store's root directory.
    pub store: PathBuf,
    pub entries: Vec<EntryReport>,
    /// Files and directories that were not read (or not deleted), and why.
    pub problems: Vec<Problem>,
}

/// One store entry's fate.
#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub version: String,
    pub hash: String,
    pub outcome: EntryOutcome,
    /// The broker's name for the server, once imported.
    pub name: Option<String>,
    /// The matched server's URL, and where it was found.
    pub url: Option<String>,
    pub source: Option<String>,
    /// Why it was not imported.
    pub reason: Option<String>,
    /// Its files still on disk.
    pub plaintext_left: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    Imported,
    NotMatched,
    NotImportable,
    Failed,
}

/// Import every ready entry of `store` with `import` (which returns the server's name, or
/// why it failed), deleting an imported entry's files when `delete` is set.
pub async fn import_all<F, Fut>(root: PathBuf, store: &Store, candidates: &[Candidate], delete: bool, mut import: F) -> Report
where
    F: FnMut(&Candidate, Grant) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut report = Report { store: root, entries: Vec::new(), problems: store.problems.clone() };
    for planned in plan(store, candidates) {
        let mut entry = EntryReport::of(planned.entry);
        match planned.outcome {
            Outcome::NotMatched => entry.outcome = EntryOutcome::NotMatched,
            Outcome::Incomplete { candidate, why } => {
                entry.matched(candidate);
                (entry.outcome, entry.reason) = (EntryOutcome::NotImportable, Some(why.to_owned()));
            }
            Outcome::Ready { candidate, grant } => {
                entry.matched(candidate);
                match import(candidate, *grant).await {
                    Ok(name) => {
                        (entry.outcome, entry.name) = (EntryOutcome::Imported, Some(name));
                        if delete {
                            let failed = delete_entry(planned.entry);
                            entry.plaintext_left = failed.iter().map(|p| p.path.clone()).collect();
                            report.problems.extend(failed);
                        }
                    }
                    Err(why) => (entry.outcome, entry.reason) = (EntryOutcome::Failed, Some(why)),
                }
            }
        }
        report.entries.push(entry);
    }
    report
}

impl EntryReport {
    fn of(e: &StoreEntry) -> Self {
        Self {
            version: e.version.clone(),
            hash: e.hash.clone(),
            outcome: EntryOutcome::NotMatched,
            name: None,
            url: None,
            source: None,
            reason: None,
            plaintext_left: e.files.clone(),
        }
    }

    fn matched(&mut self, c: &Candidate) {
        self.url = Some(c.url.clone());
        self.source = Some(c.source.clone());
    }

    /// One line for the user.
    pub fn line(&self) -> String {
        let at = format!("{}/{}", self.version, self.hash);
        let url = self.url.as_deref().unwrap_or_default();
        let why = self.reason.as_deref().unwrap_or_default();
        match self.outcome {
            EntryOutcome::Imported => format!("imported {url} as {} ({at})", self.name.as_deref().unwrap_or_default()),
            EntryOutcome::NotMatched => format!("not matched: {at} (no host config names its server; name it with --url URL)"),
            EntryOutcome::NotImportable => format!("not imported: {url} ({at}): {why}"),
            EntryOutcome::Failed => format!("failed: {url} ({at}): {why}"),
        }
    }
}

/// Why an imported entry's files must not be used again: the proving refresh spent their
/// refresh token, and an AS with reuse detection revokes the whole grant (the broker's copy
/// too) when mcp-remote presents it again.
const SPENT: &str = "the import spent the refresh token in those files: a host still running mcp-remote for an imported server \
would present it again, and an authorization server that detects reuse then ends the grant for the broker too; \
switch those hosts to the broker and delete the files";

impl Report {
    /// The report for the user: a line per entry, then what was skipped, then the plaintext
    /// files that remain.
    pub fn lines(&self, delete: bool) -> Vec<String> {
        let mut out: Vec<String> = self.entries.iter().map(EntryReport::line).collect();
        if self.entries.is_empty() {
            out.push(format!("no mcp-remote sign-ins found in {}", self.store.display()));
        }
        out.extend(self.problems.iter().map(|p| format!("skipped {}: {}", p.path.display(), p.reason)));
        let left: Vec<&PathBuf> = self.entries.iter().flat_map(|e| &e.plaintext_left).collect();
        if !left.is_empty() {
            let hint = if delete { "" } else { " (--delete-plaintext removes those of imported servers)" };
            out.push(format!("plaintext files remain{hint}:"));
            out.extend(left.iter().map(|p| format!("  {}", p.display())));
        }
        if self.entries.iter().any(|e| e.outcome == EntryOutcome::Imported && !e.plaintext_left.is_empty()) {
            out.push(SPENT.to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_store;
    use super::*;

    const A: &str = "15b9982bbc0f6c97e59b3c224d8cad5a"; // https://mcp.example/mcp
    const B: &str = "52d7ccb339cd5f3594359c941127c237"; // the same with --resource https://mcp.example/
    const CLIENT: &str = r#"{"client_id":"c-1","redirect_uris":[]}"#;
    const TOKENS: &str = r#"{"access_token":"at-1","token_type":"Bearer","refresh_token":"rt-1"}"#;

    fn fixture() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let v1 = dir.path().join("mcp-remote-v1");
        std::fs::create_dir_all(&v1).expect("mkdir");
        for hash in [A, B] {
            std::fs::write(v1.join(format!("{hash}_client_info.json")), CLIENT).expect("write");
            std::fs::write(v1.join(format!("{hash}_tokens.json")), TOKENS).expect("write");
        }
        std::fs::write(v1.join("0123456789abcdef0123456789abcdef_tokens.json"), "garbage").expect("write");
        let store = read_store(dir.path());
        (dir, store)
    }

    fn candidates() -> Vec<Candidate> {
        let mut with_resource = Candidate::from_url("https://mcp.example/mcp");
        with_resource.resource = Some("https://mcp.example/".into());
        vec![Candidate::from_url("https://mcp.example/mcp"), with_resource]
    }

    #[tokio::test]
    async fn imported_entries_lose_their_files_only_after_success() {
        let (dir, store) = fixture();
        let cands = candidates();
        let mut seen = Vec::new();
        let report = import_all(dir.path().into(), &store, &cands, true, |c, grant| {
            seen.push(grant.tokens.refresh_token.as_ref().map(|r| r.secret().clone()));
            let ok = c.resource.is_none();
            async move { if ok { Ok("mcp.example".to_owned()) } else { Err("the AS refused the refresh token".to_owned()) } }
        })
        .await;
        assert_eq!(seen, [Some("rt-1".to_owned()), Some("rt-1".to_owned())]);
        let outcomes: Vec<_> = report.entries.iter().map(|e| (e.outcome, e.plaintext_left.len())).collect();
        assert_eq!(outcomes, [(EntryOutcome::NotMatched, 1), (EntryOutcome::Imported, 0), (EntryOutcome::Failed, 2)]);
        let left = read_store(dir.path());
        assert!(!left.entries.iter().any(|e| e.hash == A), "the imported entry's files are gone");
        assert!(left.entries.iter().any(|e| e.hash == B), "the failed one's stay");
        let text = report.lines(true).join("\n");
        assert!(text.contains("imported https://mcp.example/mcp as mcp.example"), "{text}");
        assert!(text.contains("failed: https://mcp.example/mcp") && text.contains("refused"), "{text}");
        assert!(text.contains("plaintext files remain:") && text.contains(&format!("{B}_tokens.json")), "{text}");
        assert!(!text.contains("rt-1") && !serde_json::to_string(&report).expect("json").contains("rt-1"), "no secret in the report");
    }

    #[tokio::test]
    async fn without_delete_every_file_is_named_as_left() {
        let (dir, store) = fixture();
        let cands = candidates()[..1].to_vec();
        let report = import_all(dir.path().into(), &store, &cands, false, |_, _| async { Ok("n".to_owned()) }).await;
        let outcomes: Vec<_> = report.entries.iter().map(|e| e.outcome).collect();
        assert_eq!(outcomes, [EntryOutcome::NotMatched, EntryOutcome::Imported, EntryOutcome::NotMatched]);
        assert_eq!(report.entries[1].plaintext_left.len(), 2);
        let lines = report.lines(false);
        assert!(lines.iter().any(|l| l.contains("--delete-plaintext")));
        assert!(lines.iter().any(|l| l.starts_with("the import spent the refresh token")), "{lines:?}");
        assert_eq!(report.problems.len(), 1, "the garbage file is reported");
    }
}
