//! `import mcp-remote`: mcp-remote's sign-ins into the broker. This process reads the
//! plaintext store and the host configs that name its servers; each grant goes over the
//! private control socket to the service, which checks, stores and proves it
//! (`POST /v1/import`); files are deleted only after that proof, and only when asked.

use anyhow::{bail, Context, Result};
use mcp_broker::hosts::detect::{self, Dirs};
use mcp_broker::hosts::import::mcp_remote::{self, Candidate, EntryOutcome, Grant};
use mcp_broker::secret::Secret;
use mcp_broker::service::api::{Import, ImportClient, ImportTokens};
use mcp_broker::service::client::Control;

use super::args::ImportCommand;

pub async fn import(control: &Control, command: ImportCommand) -> Result<()> {
    let ImportCommand::McpRemote { url, delete_plaintext, json } = command;
    let dirs = Dirs::from_env().context("cannot find your home directory")?;
    let project = std::env::current_dir().ok();
    let configs = detect::detect(&dirs, project.as_deref());
    let candidates = mcp_remote::candidates(&configs, &url);
    let root = mcp_remote::store_root_from_env(&dirs.home);
    let store = mcp_remote::read_store(&root);
    let report = mcp_remote::import_all(root, &store, &candidates, delete_plaintext, |candidate, grant| {
        let body = body(candidate, grant);
        async move { control.import(&body).await.map(|i| i.server.name).map_err(|e| e.to_string()) }
    })
    .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.lines(delete_plaintext).iter().for_each(|l| println!("{l}"));
    }
    let failed = report.entries.iter().filter(|e| e.outcome == EntryOutcome::Failed).count();
    if failed > 0 {
        bail!("{failed} of mcp-remote's sign-ins could not be imported");
    }
    Ok(())
}

/// The control API's body for one grant.
fn body(candidate: &Candidate, grant: Grant) -> Import {
    let Grant { client, tokens } = grant;
    Import {
        url: candidate.url.clone(),
        name: None,
        client: ImportClient {
            client_id: client.client_id,
            client_secret: client.client_secret,
            token_endpoint_auth_method: client.auth_method,
            issuer: client.issuer,
        },
        tokens: ImportTokens {
            access_token: Secret::new(tokens.access_token.secret().clone()),
            refresh_token: tokens.refresh_token.map(|r| Secret::new(r.secret().clone())),
            token_type: tokens.token_type,
            expires_at: tokens.expires_at,
            scopes: tokens.scopes,
            issuer: tokens.issuer,
        },
    }
}
