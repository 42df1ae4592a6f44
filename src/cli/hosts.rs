//! `hosts add|list|remove` (HTTP host keys and who used what) and `audit` (the latest calls).

use anyhow::Result;
use mcp_broker::service::api::{AuditQuery, Hosts};
use mcp_broker::service::client::Control;

use super::args::HostsCommand;
use super::table::{opt, print_table, rfc3339};

pub async fn hosts(control: &Control, command: HostsCommand) -> Result<()> {
    match command {
        HostsCommand::Add { name, any_user, json } => {
            let added = control.add_host(&mcp_broker::service::api::NewHost { name: name.clone(), any_user }).await?;
            if json {
                println!("{}", serde_json::to_string(&added)?);
            } else {
                println!("Host {name} created. Its key (shown only now):\n\n  {}\n", added.key.expose());
                println!("Send it as `Authorization: Bearer <key>` to {}/servers/NAME/mcp", added.endpoint);
            }
        }
        HostsCommand::List { json } => {
            let hosts = control.hosts().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hosts)?);
            } else {
                print_table(["HOST", "SERVER", "LAST USED", "CALLS"], &host_rows(&hosts));
            }
        }
        HostsCommand::Remove { name } => {
            control.remove_host(&name).await?;
            println!("Removed host {name}; its key no longer works.");
        }
        HostsCommand::Detect { .. } | HostsCommand::Connect { .. } | HostsCommand::Disconnect { .. } => {
            unreachable!("run without the service, in cli::run")
        }
    }
    Ok(())
}

/// One row per host × server used, and one for each host with a key that used nothing yet.
fn host_rows(hosts: &Hosts) -> Vec<[String; 4]> {
    let mut rows: Vec<[String; 4]> = hosts
        .hosts
        .iter()
        .filter(|h| !hosts.usage.iter().any(|u| u.host == h.name))
        .map(|h| {
            let key = if h.any_user { "http key (any user)" } else { "http key" };
            [h.name.clone(), key.into(), "-".into(), "-".into()]
        })
        .collect();
    rows.extend(hosts.usage.iter().map(|u| [u.host.clone(), u.server.clone(), rfc3339(u.last_used), u.calls.to_string()]));
    rows
}

pub async fn audit(control: &Control, json: bool, server: Option<String>, limit: usize) -> Result<()> {
    let calls = control.audit(&AuditQuery { server, host: None, limit: Some(limit) }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&calls)?);
        return Ok(());
    }
    let rows: Vec<[String; 6]> = calls
        .calls
        .iter()
        .map(|c| {
            let result = c.error.clone().unwrap_or_else(|| c.status.to_string());
            [rfc3339(c.time), c.host.clone(), c.server.clone(), opt(&c.method), opt(&c.tool), result]
        })
        .collect();
    print_table(["TIME", "HOST", "SERVER", "METHOD", "TOOL", "RESULT"], &rows);
    Ok(())
}
