//! The `mcp-broker` command line: a thin layer over the engine library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mcp_broker::login::{browser::BrowserError, Progress};
use mcp_broker::registration::ClientChoice;
use mcp_broker::vault::{Home, Secret, ServerRecord};
use mcp_broker::{Broker, LoginRequest};
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
}

#[derive(clap::Args)]
struct LoginArgs {
    /// The MCP server's URL, or the name of a server signed in before.
    server: String,
    /// A short name for the server (default: its host name).
    #[arg(long)]
    name: Option<String>,
    /// Use a client registered in advance at the authorization server.
    #[arg(long)]
    client_id: Option<String>,
    /// The environment variable holding that client's secret (secrets never go in argv).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    client_secret_env: Option<String>,
    /// An https URL of a Client ID Metadata Document to use as the client id, where the AS supports it.
    #[arg(long, value_name = "URL", conflicts_with = "client_id")]
    client_metadata_url: Option<Url>,
    /// Extra scopes to request, space-separated.
    #[arg(long)]
    scope: Option<String>,
    /// Seconds to wait for the browser sign-in.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    let text = e.to_string().replace(['\n', '\r'], " ");
    eprintln!("error: {text}");
    ExitCode::FAILURE
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCP_BROKER_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn run(cli: Cli) -> Result<()> {
    let broker = Broker::open(Home::from_env()?)?;
    match cli.command {
        Command::Login(args) => login(&broker, args).await,
        Command::Status { json } => status(&broker, json),
        Command::Refresh { name } => {
            let issued = broker.refresh(&name).await?;
            println!("Refreshed {name}; the access token expires {}.", expiry_text(issued.expires_at));
            Ok(())
        }
        Command::Logout { name, local } => {
            let report = broker.logout(&name, local).await?;
            let how = if report.revoked { "revoked at the authorization server and forgotten" } else { "forgotten (not revoked)" };
            println!("Signed out of {name}: tokens {how}.");
            Ok(())
        }
    }
}

struct Terminal;

impl Progress for Terminal {
    fn open_url(&self, url: &Url) {
        eprintln!("Opening your browser to sign in. If it does not open, visit:\n\n  {url}\n");
    }
    fn browser_failed(&self, error: &BrowserError) {
        eprintln!("{error}");
    }
}

async fn login(broker: &Broker, args: LoginArgs) -> Result<()> {
    let (url, name) = match Url::parse(&args.server) {
        Ok(_) => (args.server.clone(), args.name.clone()),
        Err(_) => {
            let known = broker.servers()?.into_iter().find(|s| s.name == args.server);
            let known = known.with_context(|| format!("{:?} is neither a URL nor a known server name", args.server))?;
            (known.url, Some(known.name))
        }
    };
    let client = match (&args.client_id, &args.client_metadata_url) {
        (Some(id), _) => ClientChoice::PreRegistered { client_id: id.clone(), secret: secret_from_env(args.client_secret_env.as_deref())? },
        (None, Some(doc)) => ClientChoice::MetadataDocument(doc.clone()),
        (None, None) => ClientChoice::Automatic,
    };
    let request = LoginRequest {
        url,
        name,
        client,
        extra_scopes: args.scope.as_deref().map(mcp_broker::discovery::www_authenticate::split_scopes).unwrap_or_default(),
        timeout: Some(Duration::from_secs(args.timeout)),
    };
    let record = broker.login(&request, &Terminal).await?;
    println!("Signed in to {} ({}) with scopes: {}.", record.name, record.url, scopes_text(&record));
    Ok(())
}

fn secret_from_env(var: Option<&str>) -> Result<Option<Secret>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
        _ => bail!("--client-secret-env names {var}, but that environment variable is not set"),
    }
}

fn status(broker: &Broker, json: bool) -> Result<()> {
    let servers = broker.servers()?;
    if json {
        let list: Vec<_> = servers.iter().map(status_json).collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "servers": list }))?);
        return Ok(());
    }
    if servers.is_empty() {
        println!("No servers yet. Sign in to one with: mcp-broker login <URL>");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = servers
        .iter()
        .map(|s| {
            let account = s.account.clone().unwrap_or_else(|| "-".into());
            [s.name.clone(), account, scopes_text(s), expiry_text(s.expires_at), s.state.as_str().replace('_', " ")]
        })
        .collect();
    print_table(["SERVER", "ACCOUNT", "SCOPES", "EXPIRES", "STATE"], &rows);
    Ok(())
}

fn status_json(s: &ServerRecord) -> serde_json::Value {
    let rfc3339 = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    serde_json::json!({
        "name": s.name, "url": s.url, "resource": s.resource, "state": s.state.as_str(), "issuer": s.issuer,
        "client_id": s.client_id, "account": s.account, "scopes": s.scopes,
        "expires_at": rfc3339(s.expires_at), "has_refresh_token": s.has_refresh_token, "last_error": s.last_error,
    })
}

fn scopes_text(s: &ServerRecord) -> String {
    if s.scopes.is_empty() { "-".into() } else { s.scopes.join(" ") }
}

fn expiry_text(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else { return "-".into() };
    let secs = (at - OffsetDateTime::now_utc()).whole_seconds();
    match secs {
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
