//! `hosts detect|connect|disconnect`: the user's AI hosts and their switch to the broker.
//! These read and write the user's own config files, so they run here; the service is
//! reached (started if need be) only to keep a key an entry sent.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mcp_broker::hosts::adopt::{Adopter, Options, Report};
use mcp_broker::hosts::connect::Choice;
use mcp_broker::hosts::detect::{self, entry::Transport, DetectedConfig, Dirs, HostKind};
use mcp_broker::service::keeper::ServiceKeeper;
use mcp_broker::vault::{Home, Keychain};
use serde::Serialize;

/// `hosts detect --json`.
#[derive(Serialize)]
struct Detected {
    configs: Vec<DetectedConfig>,
}

/// A host id on the command line (`claude-code`).
pub fn host_kind(id: &str) -> Result<HostKind, String> {
    HostKind::from_id(id).ok_or_else(|| {
        let ids: Vec<&str> = HostKind::ALL.iter().map(|h| h.id()).collect();
        format!("unknown host {id:?}; one of: {}", ids.join(", "))
    })
}

fn dirs() -> Result<Dirs> {
    Dirs::from_env().context("cannot find your home directory")
}

fn adopter(home: &Home, project: Option<PathBuf>) -> Result<Adopter> {
    let exe = std::env::current_exe().context("cannot tell where mcp-broker is installed")?;
    Ok(Adopter { dirs: dirs()?, project, config_dir: home.config_dir.clone(), exe })
}

pub fn detect(project: Option<PathBuf>, json: bool) -> Result<()> {
    let configs = detect::detect(&dirs()?, project.as_deref());
    if json {
        println!("{}", serde_json::to_string_pretty(&Detected { configs })?);
        return Ok(());
    }
    if configs.is_empty() {
        println!("No AI host config found (see the README's \"Switch your hosts\" for where each is looked for).");
    }
    for c in &configs {
        println!("{} ({}): {}", c.host_name, c.host.id(), c.path.display());
        if let Some(e) = &c.error {
            println!("  cannot use it: {e}");
        }
        if c.servers.is_empty() && c.error.is_none() {
            println!("  no MCP servers");
        }
        for s in &c.servers {
            let secrets = if s.plaintext_secrets.is_empty() { String::new() } else { format!("; plaintext secrets: {}", s.plaintext_secrets.join(", ")) };
            println!("  {:<24} {}{secrets}", s.name, transport(&s.transport));
        }
    }
    Ok(())
}

fn transport(t: &Transport) -> String {
    match t {
        Transport::Broker { server } => format!("through mcp-broker ({server})"),
        Transport::McpRemote(r) => format!("remote, via mcp-remote: {}", r.url),
        Transport::Remote { url } => format!("remote: {url}"),
        Transport::Local { command } => format!("local program: {command}"),
        Transport::Unknown => "neither a command nor a URL".into(),
    }
}

pub fn connect(home: &Home, host: HostKind, servers: Vec<String>, options: Options, json: bool, project: Option<PathBuf>) -> Result<()> {
    let choice = if servers.is_empty() { Choice::All } else { Choice::Servers(servers) };
    let report = adopter(home, project)?.connect_with(host, &choice, &options, &ServiceKeeper::new(home))?;
    print_report(&report, json, "through mcp-broker")
}

pub fn disconnect(home: &Home, host: HostKind, dry_run: bool, json: bool, project: Option<PathBuf>) -> Result<()> {
    let report = adopter(home, project)?.disconnect(host, dry_run, &ServiceKeeper::new(home))?;
    print_report(&report, json, "put back")
}

fn print_report(r: &Report, json: bool, done: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let mut changed = 0;
    for f in &r.files {
        println!("{}: {}", r.host.display_name(), f.path.display());
        for c in &f.changed {
            let verb = if r.dry_run { "would be" } else { "now" };
            println!("  {:<24} {verb} {done} ({})", c.name, c.url);
            if c.local_env.is_some() {
                let what = if done == "put back" { "its secrets are back in the file" } else { "its secret env values are now in the keychain; mcp-broker run starts it with them" };
                println!("  {:<24} {what}", "");
            }
            if let Some(server) = &c.keyed {
                let what = if done == "put back" { "its key was put back in the file; the broker keeps it too, as server" } else { "its key is now in the keychain, as the broker's server" };
                println!("  {:<24} {what} {server}", "");
            }
            if !c.not_carried.is_empty() {
                println!("  {:<24} not carried over: {}", "", c.not_carried.join(", "));
            }
        }
        for s in &f.skipped {
            println!("  {:<24} left as it is: {}", s.name, s.reason);
        }
        print!("{}", f.diff);
        if let Some(b) = &f.backup {
            println!("  the file as it was: {} (backup)", b.display());
        }
        changed += f.changed.len();
    }
    match (&r.running, changed, r.dry_run) {
        (_, 0, _) => println!("Nothing to change."),
        (_, _, true) => println!("Nothing was written (--dry-run)."),
        (Some(running), _, false) if !running.is_empty() => {
            println!("{} is running ({}): restart it to use the new entries.", r.host.display_name(), running.join(", "))
        }
        (None, _, false) => println!("Restart {} if it is running: it reads its config at start.", r.host.display_name()),
        _ => {}
    }
    Ok(())
}

/// `run ID -- COMMAND…`: the program, with the secret env values kept for ID put back.
pub fn run(home: &Home, id: &str, command: &[String]) -> Result<()> {
    use mcp_broker::hosts::connect::local;
    let account = local::env_account(id);
    let kept = Keychain::new(home.keychain_service.clone())
        .get(&account)
        .with_context(|| format!("cannot read the secrets kept for {id} from the keychain"))?
        .with_context(|| format!("no secrets are kept for {id}; run `mcp-broker hosts connect HOST --include-local` again, or `hosts disconnect HOST`"))?;
    let env = local::decode_env(&kept).with_context(|| format!("the keychain item for {id} is damaged"))?;
    let (program, args) = command.split_first().context("no program to run after --")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).envs(&env);
    exec(cmd, program)
}

/// Become the program (same PID, same stdin/stdout for the host), or run it and pass on its status.
fn exec(mut cmd: std::process::Command, program: &str) -> Result<()> {
    #[cfg(unix)]
    {
        let e = std::os::unix::process::CommandExt::exec(&mut cmd);
        Err(e).with_context(|| format!("cannot start {program}"))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().with_context(|| format!("cannot start {program}"))?;
        std::process::exit(status.code().unwrap_or(1))
    }
}
