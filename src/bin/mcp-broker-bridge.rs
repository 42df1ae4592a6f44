//! The stdio bridge as a small program of its own: what `mcp-broker connect NAME` turns into.
//!
//! A user's hosts keep one bridge running per server they use, so a bridge should cost as
//! little memory as possible. This binary links only the bridge and the control-socket client
//! (no CLI parser, HTTP server, TLS, SQLite or keychain library), which keeps its resident
//! size about half of the full `mcp-broker` binary's. `mcp-broker connect` resolves its
//! arguments and then `exec`s this program in its own process (same PID, same parent), so
//! hosts still launch `mcp-broker connect NAME`; when this file is missing, `connect` runs the
//! same bridge itself.
//!
//! Its command line is internal and fixed: `mcp-broker-bridge SERVER HOST [SERVICE_PID]` (set
//! by `connect`, which parses the user's arguments with clap; positional values need no parser
//! here). SERVICE_PID names a service `connect` started: this process's child since the `exec`.

use std::process::ExitCode;

use mcp_broker::service::client::Control;
use mcp_broker::vault::Home;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (server, host, started) = match args.as_slice() {
        [server, host] => (server, host, None),
        [server, host, pid] => (server, host, pid.parse().ok().filter(|p: &i32| *p > 0)),
        _ => {
            eprintln!("error: mcp-broker-bridge is started by `mcp-broker connect NAME`; run that instead");
            return ExitCode::from(2);
        }
    };
    if let Some(pid) = started {
        reap(pid);
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    match runtime.block_on(run(server, host)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

async fn run(server: &str, host: &str) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let control = Control::connect_or_start(&home).await?;
    mcp_broker::bridge::run(control, server, host).await
}

/// Wait for the service `connect` started, in a thread of its own, so that its exit (on
/// `mcp-broker stop`) leaves no zombie process behind while this bridge runs on.
fn reap(pid: i32) {
    #[cfg(unix)]
    std::thread::spawn(move || {
        // SAFETY: waitpid on a PID with a null status pointer only waits; it touches no memory.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) }
    });
    #[cfg(not(unix))]
    let _ = pid;
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {}", message.replace(['\n', '\r'], " "));
    ExitCode::FAILURE
}

/// Warnings to stderr; `MCP_BROKER_LOG=<level>` (e.g. `debug`) shows more. Unlike the full
/// binary this takes a plain level only: a directive filter would link a regex engine.
fn init_logging() {
    let level = std::env::var("MCP_BROKER_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(tracing::Level::WARN);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(std::io::stderr).init();
}
