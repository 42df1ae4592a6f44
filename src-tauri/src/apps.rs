//! The window's "Detected apps": the AI hosts installed here (their config files, the MCP
//! servers each lists and what each runs), and switching a host's remote servers to the
//! broker and back. It is `mcp-broker hosts detect|connect|disconnect` for the window.
//!
//! These read and write the user's own config files, so they run the library directly
//! ([`mcp_broker::hosts`]), with no service, like the CLI: the ledger of what Connect changed
//! and the backups go to the broker's config dir, and the rewritten entries run the
//! `mcp-broker` command line ([`crate::cli_path`]), not this app.

use std::path::PathBuf;

use mcp_broker::hosts::adopt::{Adopter, Keeper, Ledger, Report};
use mcp_broker::hosts::connect::Choice;
use mcp_broker::hosts::detect::{self, entry::Transport, DetectedConfig, Dirs, HostKind};
use mcp_broker::service::keeper::ServiceKeeper;
use mcp_broker::vault::Home;
use serde::Serialize;

use crate::cli_path::CliSearch;

/// Where the hosts' files are, where the broker keeps what it changed, and where the CLI is.
#[derive(Debug, Clone)]
pub struct Apps {
    /// `None` when this user has no home directory.
    dirs: Option<Dirs>,
    /// The broker's config dir: `host-connections.json` and `host-backups/`.
    config_dir: PathBuf,
    cli: CliSearch,
    /// Where keys taken out of a host's file go: the service, and the keychain.
    home: Home,
}

/// The list the window shows.
#[derive(Debug, Serialize)]
pub struct DetectedApps {
    pub apps: Vec<DetectedApp>,
}

/// One AI host that has a config file here.
#[derive(Debug, Serialize)]
pub struct DetectedApp {
    pub host: HostKind,
    pub name: &'static str,
    /// Each config file it reads: its servers (what each runs, and the names of the
    /// plaintext secrets it holds, never their values), or why it cannot be read.
    pub files: Vec<DetectedConfig>,
    /// Whether Connect changed entries of it that Disconnect puts back.
    pub connected: bool,
    /// How many of its entries run `mcp-broker connect` already.
    pub through_broker: usize,
    /// How many entries Connect would rewrite now.
    pub would_change: usize,
    /// Why Connect cannot be used (a file that does not parse, a format not written yet, no
    /// `mcp-broker` command line).
    pub cannot_connect: Option<String>,
}

impl Apps {
    pub fn new(dirs: Option<Dirs>, home: &Home, cli: CliSearch) -> Self {
        Self { dirs, config_dir: home.config_dir.clone(), cli, home: home.clone() }
    }

    /// This user's hosts, the broker home's config dir, the CLI beside this app or on `PATH`.
    pub fn from_env(home: &Home) -> Self {
        Self::new(Dirs::from_env(), home, CliSearch::from_env())
    }

    /// Keys go to the service and entries' old texts to the keychain, as for the CLI.
    fn keeper(&self) -> ServiceKeeper {
        ServiceKeeper::new(&self.home)
    }

    fn dirs(&self) -> Result<&Dirs, String> {
        self.dirs.as_ref().ok_or_else(|| "cannot find your home directory".to_owned())
    }

    fn cli(&self) -> Result<PathBuf, String> {
        self.cli.find().map_err(|e| e.to_string())
    }

    /// The library's adopter, with `exe` as the program rewritten entries run (disconnect
    /// and the ledger do not use it).
    fn adopter(&self, exe: PathBuf) -> Result<Adopter, String> {
        Ok(Adopter { dirs: self.dirs()?.clone(), project: None, config_dir: self.config_dir.clone(), exe })
    }

    /// Every host with a config file here, each with what Connect would do.
    pub fn detected(&self) -> Result<DetectedApps, String> {
        let cli = self.cli();
        let adopter = self.adopter(cli.clone().unwrap_or_default())?;
        let ledger = adopter.ledger().map_err(one_line)?;
        let configs = detect::detect(self.dirs()?, None);
        let apps = HostKind::ALL
            .into_iter()
            .filter_map(|host| {
                let files: Vec<DetectedConfig> = configs.iter().filter(|c| c.host == host).cloned().collect();
                (!files.is_empty()).then(|| app(&adopter, &self.keeper(), cli.as_ref().err().map(String::as_str), &ledger, host, files))
            })
            .collect();
        Ok(DetectedApps { apps })
    }

    /// What Connect would change in `host`'s files, and what it leaves alone and why.
    pub fn preview(&self, host: HostKind) -> Result<Report, String> {
        self.adopter(self.cli()?)?.connect(host, &Choice::All, true, &self.keeper()).map_err(one_line)
    }

    /// Switch every remote entry of `host` to `mcp-broker connect`.
    pub fn connect(&self, host: HostKind) -> Result<Report, String> {
        self.adopter(self.cli()?)?.connect(host, &Choice::All, false, &self.keeper()).map_err(one_line)
    }

    /// Put back every entry Connect changed in `host`'s files.
    pub fn disconnect(&self, host: HostKind) -> Result<Report, String> {
        self.adopter(PathBuf::new())?.disconnect(host, false, &self.keeper()).map_err(one_line)
    }
}

/// One host's row: its files, and what Connect would do (a dry run).
fn app(adopter: &Adopter, keeper: &dyn Keeper, no_cli: Option<&str>, ledger: &Ledger, host: HostKind, files: Vec<DetectedConfig>) -> DetectedApp {
    let through_broker = files.iter().flat_map(|f| &f.servers).filter(|s| matches!(s.transport, Transport::Broker { .. })).count();
    let (would_change, cannot_connect) = match no_cli {
        Some(why) => (0, Some(why.to_owned())),
        None => match adopter.connect(host, &Choice::All, true, keeper) {
            Ok(report) => (report.files.iter().map(|f| f.changed.len()).sum(), None),
            Err(e) => (0, Some(one_line(e))),
        },
    };
    DetectedApp {
        host,
        name: host.display_name(),
        files,
        connected: ledger.connections.iter().any(|c| c.host == host),
        through_broker,
        would_change,
        cannot_connect,
    }
}

/// A host id as the window sends it (`claude-code`).
pub fn host_kind(id: &str) -> Result<HostKind, String> {
    HostKind::from_id(id).ok_or_else(|| {
        let ids: Vec<&str> = HostKind::ALL.iter().map(|h| h.id()).collect();
        format!("unknown app {id:?}; one of: {}", ids.join(", "))
    })
}

/// An error as the one line the window shows.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_the_clis() {
        assert_eq!(host_kind("vs-code"), Ok(HostKind::VsCode));
        assert!(host_kind("emacs").unwrap_err().contains("claude-code"));
    }

    #[test]
    fn no_home_is_an_error_not_a_panic() {
        let home = Home::at(std::path::Path::new("/nonexistent")).expect("a home");
        let apps = Apps::new(None, &home, CliSearch::default());
        assert_eq!(apps.detected().unwrap_err(), "cannot find your home directory");
    }
}
