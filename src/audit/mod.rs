//! The audit log: every forwarded request (time, host, server, JSON-RPC method, tool,
//! upstream status, duration) in SQLite, plus which host used which server and when.
//! No bodies, no tokens.
//!
//! Writes go through a channel to one writer thread that batches them in transactions,
//! so recording a call costs the proxy's hot path a channel send, not a disk write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
#[error("the audit database {path} failed: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// One forwarded request (also the control API's answer, `GET /v1/audit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Call {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub host: String,
    pub server: String,
    pub method: Option<String>,
    pub tool: Option<String>,
    /// The upstream HTTP status, or 0 when no upstream answer came.
    pub status: u16,
    pub duration_ms: f64,
    /// What the broker itself decided, when it answered instead of the upstream.
    pub error: Option<String>,
}

/// Which host used which server (also in the control API's `GET /v1/hosts`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub host: String,
    pub server: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_used: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used: OffsetDateTime,
    pub calls: i64,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY, time TEXT NOT NULL, host TEXT NOT NULL, server TEXT NOT NULL,
    method TEXT, tool TEXT, status INTEGER NOT NULL, duration_ms REAL NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS calls_server ON calls (server, id);
CREATE TABLE IF NOT EXISTS usage (
    host TEXT NOT NULL, server TEXT NOT NULL, first_used TEXT NOT NULL, last_used TEXT NOT NULL,
    calls INTEGER NOT NULL, PRIMARY KEY (host, server));
";

/// The audit log of one home.
pub struct Audit {
    path: PathBuf,
    tx: mpsc::Sender<Entry>,
}

/// What the writer thread is sent.
enum Entry {
    Call(Call),
    /// Write everything queued before this, then answer.
    Flush(mpsc::Sender<()>),
}

impl Audit {
    /// Open (creating) the database and start its writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, AuditError> {
        let path = data_dir.join("audit.sqlite3");
        let conn = connect(&path)?;
        conn.execute_batch(SCHEMA).map_err(|source| AuditError { path: path.clone(), source })?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| AuditError { path: path.clone(), source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)) })?;
        Ok(Self { path, tx })
    }

    /// Queue a call for the log; never blocks on the disk.
    pub fn record(&self, call: Call) {
        let _ = self.tx.send(Entry::Call(call));
    }

    /// Write every call queued so far, waiting at most `timeout`; false if that did not
    /// happen in time. The service calls it as it stops, so no call goes unlogged.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, written) = mpsc::channel();
        if self.tx.send(Entry::Flush(done)).is_err() {
            return false;
        }
        crate::blocking::run(|| written.recv_timeout(timeout).is_ok())
    }

    /// The latest calls, newest first, optionally for one server and/or host.
    pub fn latest(&self, server: Option<&str>, host: Option<&str>, limit: usize) -> Result<Vec<Call>, AuditError> {
        crate::blocking::run(|| self.query_latest(server, host, limit))
    }

    fn query_latest(&self, server: Option<&str>, host: Option<&str>, limit: usize) -> Result<Vec<Call>, AuditError> {
        let err = |source| AuditError { path: self.path.clone(), source };
        let conn = connect(&self.path)?;
        let mut stmt = conn
            .prepare(
                "SELECT time, host, server, method, tool, status, duration_ms, error FROM calls
                 WHERE (?1 IS NULL OR server = ?1) AND (?2 IS NULL OR host = ?2) ORDER BY id DESC LIMIT ?3",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![server, host, limit as i64], |r| {
                Ok(Call {
                    time: parse_time(&r.get::<_, String>(0)?),
                    host: r.get(1)?,
                    server: r.get(2)?,
                    method: r.get(3)?,
                    tool: r.get(4)?,
                    status: r.get(5)?,
                    duration_ms: r.get(6)?,
                    error: r.get(7)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Every host × server pair seen, most recent first.
    pub fn usage(&self) -> Result<Vec<Usage>, AuditError> {
        crate::blocking::run(|| self.query_usage())
    }

    fn query_usage(&self) -> Result<Vec<Usage>, AuditError> {
        let err = |source| AuditError { path: self.path.clone(), source };
        let conn = connect(&self.path)?;
        let mut stmt = conn
            .prepare("SELECT host, server, first_used, last_used, calls FROM usage ORDER BY last_used DESC")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Usage {
                    host: r.get(0)?,
                    server: r.get(1)?,
                    first_used: parse_time(&r.get::<_, String>(2)?),
                    last_used: parse_time(&r.get::<_, String>(3)?),
                    calls: r.get(4)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}

fn connect(path: &Path) -> Result<Connection, AuditError> {
    let conn = Connection::open(path).map_err(|source| AuditError { path: path.to_owned(), source })?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|source| AuditError { path: path.to_owned(), source })?;
    Ok(conn)
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn parse_time(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How long the writer gathers calls into one transaction: a busy proxy then costs one
/// disk write per batch, not per call.
const LINGER: Duration = Duration::from_millis(50);

/// Drain the channel in batches, one transaction each. After the first call of a batch the
/// writer sleeps for [`LINGER`] and then takes whatever queued meanwhile: senders never wake
/// it during that time (a receiver waiting with a timeout would be woken by every call).
/// A flush is answered once everything queued before it is written.
fn writer(mut conn: Connection, rx: mpsc::Receiver<Entry>) {
    while let Ok(first) = rx.recv() {
        if matches!(first, Entry::Call(_)) {
            std::thread::sleep(LINGER);
        }
        let (mut batch, mut flushes) = (Vec::new(), Vec::new());
        for entry in std::iter::once(first).chain(rx.try_iter()) {
            match entry {
                Entry::Call(call) => batch.push(call),
                Entry::Flush(done) => flushes.push(done),
            }
        }
        if !batch.is_empty() {
            if let Err(e) = write_batch(&mut conn, &batch) {
                tracing::warn!("audit write failed: {e}");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// One transaction: a row per call, and one usage update per host × server pair.
fn write_batch(conn: &mut Connection, batch: &[Call]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO calls (time, host, server, method, tool, status, duration_ms, error) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        )?;
        let mut usage: HashMap<(&str, &str), (String, String, i64)> = HashMap::new();
        for c in batch {
            let t = fmt_time(c.time);
            insert.execute(params![t, c.host, c.server, c.method, c.tool, c.status, c.duration_ms, c.error])?;
            let u = usage.entry((&c.host, &c.server)).or_insert_with(|| (t.clone(), t.clone(), 0));
            u.1 = t;
            u.2 += 1;
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO usage (host, server, first_used, last_used, calls) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, server) DO UPDATE SET last_used = excluded.last_used, calls = calls + excluded.calls",
        )?;
        for ((host, server), (first, last, calls)) in &usage {
            upsert.execute(params![host, server, first, last, calls])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_queries() {
        let dir = std::env::temp_dir().join(format!("mcpb-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let audit = Audit::open(&dir).unwrap();
        let call = |server: &str| Call {
            time: OffsetDateTime::now_utc(),
            host: "cursor".into(),
            server: server.into(),
            method: Some("tools/call".into()),
            tool: Some("echo".into()),
            status: 200,
            duration_ms: 1.5,
            error: None,
        };
        audit.record(call("a"));
        audit.record(call("b"));
        audit.record(call("a"));
        assert!(audit.flush(Duration::from_secs(5)), "the queued calls are written");
        assert_eq!(audit.latest(None, None, 10).unwrap().len(), 3);
        assert_eq!(audit.latest(Some("a"), None, 10).unwrap().len(), 2);
        assert_eq!(audit.latest(None, Some("cursor"), 1).unwrap()[0].server, "a");
        let usage = audit.usage().unwrap();
        assert_eq!(usage.iter().find(|u| u.server == "a").unwrap().calls, 2);
        std::fs::remove_dir_all(dir).ok();
    }
}
