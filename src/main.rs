//! The `mcp-broker` command line: a thin client of the broker service's control API
//! (started on demand), plus `daemon` (the service itself) and `connect` (the stdio bridge).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use http::Method;
use http_body_util::BodyExt;
use mcp_broker::service::client::{json_request, Control};
use mcp_broker::service::control::LoginBody;
use mcp_broker::service::instance::InstanceError;
use mcp_broker::vault::Home;
use serde_json::{json, Value};
use time::OffsetDateTime;
use url::Url;

#[derive(Parser)]
#[command(name = "mcp-broker", version, about = "Signs your MCP hosts in to remote MCP servers, once, safely.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in to an MCP server: discover its authorization server, register, open the browser, store the tokens.
    Login(LoginArgs),
    /// Show every server, its account, scopes, token expiry and state.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refresh a server's access token now (normally done when a token is used).
    Refresh { name: String },
    /// Revoke a server's tokens at its authorization server (RFC 7009) and forget them.
    Logout {
        name: String,
        /// Forget the tokens even when the authorization server cannot be reached to revoke them.
        #[arg(long)]
        local: bool,
    },
    /// The stdio bridge a host launches: MCP over stdin/stdout to the server NAME (or URL).
    Connect(ConnectArgs),
    /// Keys for hosts that speak Streamable HTTP to the loopback endpoint.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// The latest calls hosts made through the broker.
    Audit {
        #[arg(long)]
        json: bool,
        /// Only calls to this server.
        #[arg(long)]
        server: Option<String>,
        /// How many calls.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run the broker service in the foreground (clients start it on demand otherwise).
    Daemon {
        /// Started by a client: losing a start race to another service is not an error.
        #[arg(long, hide = true)]
        on_demand: bool,
    },
    /// Stop the running broker service.
    Stop,
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Use a client registered in advance at the authorization server.
    #[arg(long)]
    client_id: Option<String>,
    /// The environment variable holding that client's secret (secrets never go in argv).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    client_secret_env: Option<String>,
    /// An https URL of a Client ID Metadata Document to use as the client id, where the AS supports it.
    #[arg(long, value_name = "URL", conflicts_with = "client_id")]
    client_metadata_url: Option<Url>,
}

#[derive(clap::Args)]
struct LoginArgs {
    /// The MCP server's URL, or the name of a server signed in before.
    server: String,
    /// A short name for the server (default: its host name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    /// Extra scopes to request, space-separated.
    #[arg(long)]
    scope: Option<String>,
    /// Seconds to wait for the browser sign-in.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// A server name, or a URL (added on first use).
    server: String,
    /// The name to record for the host (default: the parent process's executable).
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum HostsCommand {
    /// Create a key for an HTTP host; it is shown once.
    Add {
        name: String,
        /// Let programs of other users of this computer present the key too (an agent run
        /// under an account of its own). By default only your own programs may (Linux).
        #[arg(long)]
        any_user: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the hosts and which servers they used.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a host's key.
    Remove { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Daemon { .. }));
    if let Command::Connect(args) = &cli.command {
        if !needs_resolving(args) {
            let host = args.host.clone().unwrap_or_else(mcp_broker::hosts::process::parent_name);
            exec_bridge(&args.server, &host, &[], None);
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
    match runtime.block_on(run(cli)) {
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

async fn run(cli: Cli) -> Result<()> {
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
    let control = Control::connect_or_start_without(&home, &secret_vars(&cli.command)).await?;
    match cli.command {
        Command::Login(args) => login(&control, args).await,
        Command::Status { json } => status(&control, json).await,
        Command::Refresh { name } => {
            let v = control.call(Method::POST, &format!("/v1/servers/{name}/refresh"), None).await?;
            println!("Refreshed {name}; the access token expires {}.", expiry_text(v["server"]["expires_at"].as_str()));
            Ok(())
        }
        Command::Logout { name, local } => {
            let v = control.call(Method::POST, &format!("/v1/servers/{name}/logout"), Some(json!({ "local": local }))).await?;
            let how = if v["revoked"] == true { "revoked at the authorization server and forgotten" } else { "forgotten (not revoked)" };
            println!("Signed out of {name}: tokens {how}.");
            Ok(())
        }
        Command::Connect(args) => connect(control, args).await,
        Command::Hosts { command } => hosts(&control, command).await,
        Command::Audit { json, server, limit } => audit(&control, json, server, limit).await,
        Command::Daemon { .. } | Command::Stop => unreachable!("handled above"),
    }
}

/// The environment variable naming a client secret, which a started service must not inherit.
fn secret_vars(command: &Command) -> Vec<String> {
    match command {
        Command::Login(a) => secret_vars_of(&a.client),
        Command::Connect(a) => secret_vars_of(&a.client),
        _ => Vec::new(),
    }
}

fn secret_vars_of(client: &ClientArgs) -> Vec<String> {
    client.client_secret_env.iter().cloned().collect()
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

fn login_body(url: String, name: Option<String>, client: &ClientArgs) -> Result<LoginBody> {
    let client_secret = match &client.client_secret_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => bail!("--client-secret-env names {var}, but that environment variable is not set"),
        },
    };
    Ok(LoginBody {
        url,
        name,
        client_id: client.client_id.clone(),
        client_secret,
        client_metadata_url: client.client_metadata_url.clone(),
        ..Default::default()
    })
}

async fn login(control: &Control, args: LoginArgs) -> Result<()> {
    let (url, name) = match Url::parse(&args.server) {
        Ok(_) => (args.server.clone(), args.name.clone()),
        Err(_) => {
            let v = control.call(Method::GET, "/v1/status", None).await?;
            let known = v["servers"].as_array().into_iter().flatten().find(|s| s["name"] == args.server.as_str());
            let known = known.with_context(|| format!("{:?} is neither a URL nor a known server name", args.server))?;
            (known["url"].as_str().unwrap_or_default().to_owned(), Some(args.server.clone()))
        }
    };
    let mut body = login_body(url, name, &args.client)?;
    body.scopes = args.scope.as_deref().map(mcp_broker::oauth::discovery::www_authenticate::split_scopes).unwrap_or_default();
    body.timeout_secs = Some(args.timeout);
    let resp = control.send(json_request(Method::POST, "/v1/login", Some(serde_json::to_value(&body)?))).await?;
    let mut events = resp.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = events.frame().await {
        if let Some(chunk) = frame?.data_ref() {
            buf.extend_from_slice(chunk);
        }
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let event: Value = serde_json::from_slice(&line)?;
            match event["event"].as_str() {
                Some("open_url") => eprintln!("Opening your browser to sign in. If it does not open, visit:\n\n  {}\n", event["url"].as_str().unwrap_or_default()),
                Some("browser_failed") => eprintln!("{}", event["message"].as_str().unwrap_or_default()),
                Some("done") => {
                    let s = &event["server"];
                    println!("Signed in to {} ({}) with scopes: {}.", s["name"].as_str().unwrap_or_default(), s["url"].as_str().unwrap_or_default(), scopes_text(s));
                    return Ok(());
                }
                Some("error") => bail!("{}", event["message"].as_str().unwrap_or("sign-in failed")),
                _ => {}
            }
        }
    }
    bail!("the mcp-broker service stopped during the sign-in")
}

async fn status(control: &Control, json_out: bool) -> Result<()> {
    let v = control.call(Method::GET, "/v1/status", None).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let servers = v["servers"].as_array().cloned().unwrap_or_default();
    if servers.is_empty() {
        println!("No servers yet. Sign in to one with: mcp-broker login <URL>");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = servers
        .iter()
        .map(|s| {
            let state = s["state"].as_str().unwrap_or_default().replace('_', " ");
            [text(&s["name"]), text(&s["account"]), scopes_text(s), expiry_text(s["expires_at"].as_str()), state]
        })
        .collect();
    print_table(["SERVER", "ACCOUNT", "SCOPES", "EXPIRES", "STATE"], &rows);
    println!("\nHTTP endpoint: {}/servers/NAME/mcp", v["endpoint"].as_str().unwrap_or_default());
    Ok(())
}

/// Whether `connect` must ask the service which server it means (a URL, or client options).
fn needs_resolving(args: &ConnectArgs) -> bool {
    Url::parse(&args.server).is_ok() || args.client.client_id.is_some() || args.client.client_metadata_url.is_some()
}

/// Become the small bridge program installed beside this one (`exec`: same PID and parent,
/// so the host sees no difference, at about half the resident memory). Returns only when it
/// cannot be run, and `connect` then runs the same bridge in this process. A service this
/// process started stays its child across `exec`: the bridge is told to reap it.
fn exec_bridge(server: &str, host: &str, hidden_env: &[String], started: Option<u32>) {
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

async fn connect(control: Control, args: ConnectArgs) -> Result<()> {
    let hidden_env = secret_vars_of(&args.client);
    let name = if needs_resolving(&args) {
        let url = if Url::parse(&args.server).is_ok() { args.server.clone() } else { String::new() };
        let body = login_body(url, None, &args.client)?;
        let v = control.call(Method::POST, "/v1/resolve", Some(serde_json::to_value(&body)?)).await?;
        v["name"].as_str().context("the service named no server")?.to_owned()
    } else {
        args.server.clone()
    };
    let host = args.host.unwrap_or_else(mcp_broker::hosts::process::parent_name);
    exec_bridge(&name, &host, &hidden_env, control.started_service());
    mcp_broker::bridge::run(control, &name, &host).await
}

async fn hosts(control: &Control, command: HostsCommand) -> Result<()> {
    match command {
        HostsCommand::Add { name, any_user, json: json_out } => {
            let v = control.call(Method::POST, "/v1/hosts", Some(json!({ "name": name, "any_user": any_user }))).await?;
            if json_out {
                println!("{}", json!({ "host": v["host"], "key": v["key"], "endpoint": v["endpoint"] }));
            } else {
                println!("Host {name} created. Its key (shown only now):\n\n  {}\n", text(&v["key"]));
                println!("Send it as `Authorization: Bearer <key>` to {}/servers/NAME/mcp", text(&v["endpoint"]));
            }
        }
        HostsCommand::List { json: json_out } => {
            let v = control.call(Method::GET, "/v1/hosts", None).await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let usage = v["usage"].as_array().cloned().unwrap_or_default();
            let mut rows: Vec<[String; 4]> = v["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|h| !usage.iter().any(|u| u["host"] == h["name"]))
                .map(|h| {
                    let key = if h["any_user"] == true { "http key (any user)" } else { "http key" };
                    [text(&h["name"]), key.into(), "-".into(), "-".into()]
                })
                .collect();
            rows.extend(usage.iter().map(|u| [text(&u["host"]), text(&u["server"]), text(&u["last_used"]), text(&u["calls"])]));
            print_table(["HOST", "SERVER", "LAST USED", "CALLS"], &rows);
        }
        HostsCommand::Remove { name } => {
            control.call(Method::DELETE, &format!("/v1/hosts/{name}"), None).await?;
            println!("Removed host {name}; its key no longer works.");
        }
    }
    Ok(())
}

async fn audit(control: &Control, json_out: bool, server: Option<String>, limit: usize) -> Result<()> {
    let mut path = format!("/v1/audit?limit={limit}");
    if let Some(s) = &server {
        path.push_str(&format!("&server={}", url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()));
    }
    let v = control.call(Method::GET, &path, None).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<[String; 6]> = v["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let result = c["error"].as_str().map(str::to_owned).unwrap_or_else(|| text(&c["status"]));
            [text(&c["time"]), text(&c["host"]), text(&c["server"]), text(&c["method"]), text(&c["tool"]), result]
        })
        .collect();
    print_table(["TIME", "HOST", "SERVER", "METHOD", "TOOL", "RESULT"], &rows);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn scopes_text(s: &Value) -> String {
    let scopes: Vec<&str> = s["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if scopes.is_empty() { "-".into() } else { scopes.join(" ") }
}

fn expiry_text(at: Option<&str>) -> String {
    let Some(at) = at.and_then(|a| OffsetDateTime::parse(a, &time::format_description::well_known::Rfc3339).ok()) else { return "-".into() };
    match (at - OffsetDateTime::now_utc()).whole_seconds() {
        s if s <= 0 => "expired".into(),
        s if s < 120 => format!("in {s} s"),
        s if s < 7200 => format!("in {} min", s / 60),
        s if s < 172_800 => format!("in {} h", s / 3600),
        s => format!("in {} days", s / 86_400),
    }
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
