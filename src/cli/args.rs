//! The command line's words: every subcommand and option (clap derive), and nothing else.

use clap::{Parser, Subcommand};
use url::Url;

#[derive(Parser)]
#[command(name = "mcp-broker", version, about = "Signs your MCP hosts in to remote MCP servers, once, safely.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Take another tool's sign-ins into the broker and the keychain, usable without a browser.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
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
pub struct ClientArgs {
    /// Use a client registered in advance at the authorization server.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The environment variable holding that client's secret (secrets never go in argv).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    pub client_secret_env: Option<String>,
    /// An https URL of a Client ID Metadata Document to use as the client id, where the AS supports it.
    #[arg(long, value_name = "URL", conflicts_with = "client_id")]
    pub client_metadata_url: Option<Url>,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The MCP server's URL, or the name of a server signed in before.
    pub server: String,
    /// A short name for the server (default: its host name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Extra scopes to request, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// Seconds to wait for the browser sign-in.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// A server name, or a URL (added on first use).
    pub server: String,
    /// The name to record for the host (default: the parent process's executable).
    #[arg(long)]
    pub host: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// mcp-remote's registrations and tokens (its plaintext files under ~/.mcp-auth, or
    /// $MCP_REMOTE_CONFIG_DIR), each matched to a server named by a host config or --url.
    McpRemote {
        /// A server URL mcp-remote was run with, for sign-ins no host config names (repeatable).
        #[arg(long, value_name = "URL")]
        url: Vec<String>,
        /// Delete each imported sign-in's files once the broker has proved it works.
        #[arg(long)]
        delete_plaintext: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum HostsCommand {
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
