//! `connect`: the stdio bridge a host launches, named by server name or URL.

use anyhow::Result;
use mcp_broker::service::client::Control;
use url::Url;

use super::args::ConnectArgs;
use super::servers::login_body;

/// Whether `connect` must ask the service which server it means (a URL, or client options).
pub fn needs_resolving(args: &ConnectArgs) -> bool {
    Url::parse(&args.server).is_ok() || args.client.client_id.is_some() || args.client.client_metadata_url.is_some()
}

/// Become the small bridge program installed beside this one (`exec`: same PID and parent,
/// so the host sees no difference, at about half the resident memory). Returns only when it
/// cannot be run, and `connect` then runs the same bridge in this process. A service this
/// process started stays its child across `exec`: the bridge is told to reap it.
pub fn exec_bridge(server: &str, host: &str, hidden_env: &[String], started: Option<u32>) {
    #[cfg(unix)]
    if let Ok(exe) = mcp_broker::service::client::bridge_exe() {
        let mut cmd = std::process::Command::new(exe);
        cmd.args([server, host]);
        cmd.args(started.map(|pid| pid.to_string()));
        for var in hidden_env {
            cmd.env_remove(var);
        }
        let e = std::os::unix::process::CommandExt::exec(&mut cmd);
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("running the bridge in this process: cannot start {}: {e}", mcp_broker::service::client::BRIDGE_EXE);
        }
    }
}

pub async fn connect(control: Control, args: ConnectArgs) -> Result<()> {
    let hidden_env: Vec<String> = args.client.secret_vars();
    let name = if needs_resolving(&args) {
        let url = if Url::parse(&args.server).is_ok() { args.server.clone() } else { String::new() };
        control.resolve(&login_body(url, None, &args.client)?).await?.name
    } else {
        args.server.clone()
    };
    let host = args.host.unwrap_or_else(mcp_broker::hosts::process::parent_name);
    exec_bridge(&name, &host, &hidden_env, control.started_service());
    mcp_broker::bridge::run(control, &name, &host).await
}
