//! The `mcp-broker` commands: each a thin client of the service's control API through the
//! typed [`Control`] methods, printing a table or, with `--json`, the API's answer.

mod adopt;
mod args;
mod connect;
mod hosts;
mod import;
mod servers;
mod signin;
mod table;

use anyhow::Result;
use mcp_broker::service::client::Control;
use mcp_broker::service::instance::InstanceError;
use mcp_broker::vault::Home;

pub use args::{Cli, Command, HostsCommand};
pub use connect::{exec_bridge, needs_resolving};

/// Run one command (the runtime is the caller's).
pub async fn run(cli: Cli) -> Result<()> {
    let home = Home::from_env()?;
    if let Command::Daemon { on_demand } = cli.command {
        return match mcp_broker::service::run(home).await {
            Err(e) if on_demand && matches!(e.downcast_ref(), Some(InstanceError::AlreadyRunning)) => Ok(()),
            other => other,
        };
    }
    if let Command::Stop = cli.command {
        return stop(&home).await;
    }
    // The user's own config files: no service needed.
    if let Command::Hosts { command } = &cli.command {
        match command {
            HostsCommand::Detect { json, project } => return adopt::detect(project.clone(), *json),
            HostsCommand::Connect { host, servers, dry_run, include_local, json, project, .. } => {
                let options = mcp_broker::hosts::adopt::Options { dry_run: *dry_run, include_local: *include_local };
                return adopt::connect(&home, *host, servers.clone(), options, *json, project.clone());
            }
            HostsCommand::Disconnect { host, dry_run, json, project } => return adopt::disconnect(&home, *host, *dry_run, *json, project.clone()),
            _ => {}
        }
    }
    if let Command::Run { id, command } = &cli.command {
        return adopt::run(&home, id, command);
    }
    let control = Control::connect_or_start_without(&home, &secret_vars(&cli.command)).await?;
    match cli.command {
        Command::Login(args) => servers::login(&control, *args).await,
        Command::Status { json } => servers::status(&control, json).await,
        Command::Refresh { name } => servers::refresh(&control, &name).await,
        Command::Logout { name, local } => servers::logout(&control, &name, local).await,
        Command::Connect(args) => connect::connect(control, args).await,
        Command::Add(args) => servers::add(&control, args).await,
        Command::Hosts { command } => hosts::hosts(&control, command).await,
        Command::Audit { json, server, limit } => hosts::audit(&control, json, server, limit).await,
        Command::Import { command } => import::import(&control, command).await,
        Command::Daemon { .. } | Command::Stop | Command::Run { .. } => unreachable!("handled above"),
    }
}

/// The environment variable naming a client secret, which a started service must not inherit.
fn secret_vars(command: &Command) -> Vec<String> {
    match command {
        Command::Login(a) => a.client.secret_vars(),
        Command::Connect(a) => a.client.secret_vars(),
        Command::Add(a) => a.bearer_env.iter().cloned().chain(a.header_env.iter().filter_map(|p| p.split_once('=').map(|(_, v)| v.trim().to_owned()))).collect(),
        _ => Vec::new(),
    }
}

/// How long `stop` waits for the service to exit: its streams' grace and audit flush take ≤ 4 s.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn stop(home: &Home) -> Result<()> {
    let Some(control) = Control::connect(home).await else {
        println!("No mcp-broker service is running.");
        return Ok(());
    };
    control.stop(STOP_TIMEOUT).await?;
    println!("Stopped the mcp-broker service.");
    Ok(())
}
