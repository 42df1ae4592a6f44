//! The `mcp-broker` command line: a thin client of the broker service's control API
//! (started on demand), plus `daemon` (the service itself) and `connect` (the stdio bridge).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Daemon { .. }));
    if let Command::Connect(args) = &cli.command {
        if !cli::needs_resolving(args) {
            let host = args.host.clone().unwrap_or_else(mcp_broker::hosts::process::parent_name);
            cli::exec_bridge(&args.server, &host, &[], None);
        }
    }
    // The bridge is one of many small processes a user's hosts keep running: one thread.
    let mut builder = match cli.command {
        Command::Connect(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    // The service: one worker thread unless TOKIO_WORKER_THREADS says otherwise. Local hosts'
    // traffic is light, and every hand-off between workers is a context switch taken from the
    // hosts and servers on the same cores (docs/BENCHMARKS.md: +15-20 points of direct
    // throughput at 64 hosts on 2 cores). Keychain calls leave the worker (`block_in_place`).
    if matches!(cli.command, Command::Daemon { .. }) && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start: {e}")),
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", e.to_string().replace(['\n', '\r'], " "));
    ExitCode::FAILURE
}

/// Logs go to stderr (the service's stderr is its log file); `MCP_BROKER_LOG` sets the level.
fn init_logging(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCP_BROKER_LOG").unwrap_or_else(|_| default.into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
