//! The command line's words: every subcommand and option (clap derive), and nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mcp_broker::hosts::detect::HostKind;
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
    Login(Box<LoginArgs>),
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
    /// Add a server that takes an API key instead of OAuth; the key goes to the keychain
    /// (read from the environment variable named, or asked here; never from the command line).
    Add(AddArgs),
    /// The stdio bridge a host launches: MCP over stdin/stdout to the server NAME (or URL).
    Connect(ConnectArgs),
    /// Start a local MCP server program with the secrets `hosts connect --include-local` took
    /// from its config put back into its environment (what a connected local entry runs).
    Run {
        /// The entry's id (HOST/NAME), as `hosts connect` wrote it.
        id: String,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Your AI hosts: find them, switch them to the broker and back; keys for hosts that speak
    /// Streamable HTTP to the loopback endpoint.
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
    /// Use a client registered in advance at the authorization server. (Ids may start
    /// with '-': oidc-provider's and others' are random base64url.)
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: Option<String>,
    /// The environment variable holding that client's secret (secrets never go in argv).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    pub client_secret_env: Option<String>,
    /// An https URL of a Client ID Metadata Document to use as the client id, where the AS supports it.
    #[arg(long, value_name = "URL", conflicts_with = "client_id")]
    pub client_metadata_url: Option<Url>,
    /// The environment variable holding an initial access token for dynamic registration
    /// (RFC 7591 §3), for authorization servers that allow registration only so (Keycloak).
    #[arg(long, value_name = "VAR", conflicts_with_all = ["client_id", "client_metadata_url"])]
    pub registration_token_env: Option<String>,
}

impl ClientArgs {
    /// The environment variables that hold secrets, which a started service must not inherit.
    pub fn secret_vars(&self) -> Vec<String> {
        self.client_secret_env.iter().chain(&self.registration_token_env).cloned().collect()
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("key").required(true).multiple(true).args(["bearer_env", "header_env"])))]
pub struct AddArgs {
    /// A short name for the server.
    pub name: String,
    /// Its MCP endpoint (https, or http to a loopback address).
    pub url: String,
    /// Send the key as `Authorization: Bearer <key>`, the key read from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub bearer_env: Option<String>,
    /// Send the key in this header, read from this environment variable; repeat for several.
    #[arg(long, value_name = "HEADER=VAR")]
    pub header_env: Vec<String>,
    #[arg(long)]
    pub json: bool,
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
    /// Seconds to wait for the sign-in.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Sign in with a code entered on any device (RFC 8628 device authorization), for a
    /// machine without a browser. Chosen by itself over SSH or without a display, where the
    /// authorization server offers it.
    #[arg(long, conflicts_with = "no_browser")]
    pub device: bool,
    /// Do not open a browser: print the sign-in address to open in a browser anywhere, then
    /// paste back the address that browser ends on.
    #[arg(long)]
    pub no_browser: bool,
    /// Open the browser here even over SSH or without a display.
    #[arg(long, conflicts_with_all = ["device", "no_browser"])]
    pub browser: bool,
    /// Sign in with a further account at this server (its name becomes NAME@ACCOUNT); the
    /// authorization server is asked to let you choose the account where it can. Pass
    /// `--authorize-param login_hint=USER` to name the user.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    #[command(flatten)]
    pub quirks: QuirkArgs,
}

/// Settings for an authorization server that departs from the textbook, kept with the
/// server for every later sign-in and refresh (docs/COMPATIBILITY.md). Given with a login,
/// they replace the ones kept; without any, the kept ones stay.
#[derive(clap::Args, Default)]
pub struct QuirkArgs {
    /// Add a parameter to the authorization request and the code exchange (repeatable),
    /// e.g. Auth0's `audience=https://api.example/`.
    #[arg(long, value_name = "NAME=VALUE")]
    pub authorize_param: Vec<mcp_broker::oauth::quirks::AuthorizeParam>,
    /// Leave out the RFC 8707 `resource` parameter, for authorization servers that refuse it
    /// (Entra ID: AADSTS9010010).
    #[arg(long)]
    pub no_resource_param: bool,
    /// Receive the sign-in on this loopback port (http://127.0.0.1:PORT/callback), for
    /// authorization servers that accept only the redirect URI registered for the client.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub callback_port: Option<u16>,
    /// Use PKCE S256 with an authorization server whose metadata does not say it supports
    /// it (Entra ID, Cognito), instead of refusing it.
    #[arg(long)]
    pub assume_s256: bool,
    /// Of the authorization servers the server lists, use this one (its issuer URL)
    /// instead of the first whose metadata validates.
    #[arg(long, value_name = "ISSUER")]
    pub auth_server: Option<String>,
    /// The redirect URI registered for the client (with --client-id), when it is a page of
    /// the app rather than this machine: open the sign-in address anywhere, then paste back
    /// the address it ends on.
    #[arg(long, value_name = "URL", value_parser = mcp_broker::oauth::quirks::parse_redirect_uri, conflicts_with = "callback_port")]
    pub redirect_uri: Option<Url>,
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
    /// The AI hosts configured here, their MCP servers, and what each runs.
    Detect {
        #[arg(long)]
        json: bool,
        /// Count this project's files too (`.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`, …).
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Switch a host's remote MCP entries to `mcp-broker connect`, keeping a backup.
    Connect {
        /// The host: claude-desktop, claude-code, cursor, vs-code, windsurf, gemini-cli, codex-cli, zed.
        #[arg(value_parser = crate::cli::adopt::host_kind)]
        host: HostKind,
        /// Only these entries (by name); repeat for several.
        #[arg(long = "server", value_name = "NAME", conflicts_with = "all")]
        servers: Vec<String>,
        /// Every remote entry (the default).
        #[arg(long)]
        all: bool,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also local programs with secrets in their env: the secrets move to the keychain and
        /// `mcp-broker run` starts the program with them.
        #[arg(long)]
        include_local: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Put back the entries `hosts connect` changed, as they were.
    Disconnect {
        #[arg(value_parser = crate::cli::adopt::host_kind)]
        host: HostKind,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        project: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn login_takes_hyphenated_client_ids_and_the_sign_in_settings() {
        let cli = Cli::try_parse_from([
            "mcp-broker", "login", "https://mcp.example/mcp", "--client-id", "-3AROly", "--callback-port", "8976",
            "--authorize-param", "audience=https://api.example/", "--no-resource-param", "--assume-s256",
        ])
        .unwrap();
        let Command::Login(args) = cli.command else { panic!("not login") };
        assert_eq!(args.client.client_id.as_deref(), Some("-3AROly"));
        assert_eq!(args.quirks.callback_port, Some(8976));
        assert_eq!(args.quirks.authorize_param[0].name, "audience");
        assert!(args.quirks.no_resource_param && args.quirks.assume_s256);
        assert!(Cli::try_parse_from(["mcp-broker", "login", "u", "--account", "work"]).is_ok());
        assert!(Cli::try_parse_from(["mcp-broker", "login", "u", "--callback-port", "0"]).is_err(), "port 0 is no fixed port");
        assert!(Cli::try_parse_from(["mcp-broker", "login", "u", "--authorize-param", "state=x"]).is_err());
    }
}
