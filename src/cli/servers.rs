//! `login`, `status`, `refresh`, `logout`, `add`: the servers, their sign-in, and servers that take an API key.

use anyhow::{bail, Result};
use mcp_broker::secret::Secret;
use mcp_broker::service::api::{AddServer, KeyHeader, Login, SignIn, SignInHow, Status};
use mcp_broker::service::client::Control;
use url::Url;

use mcp_broker::oauth::quirks::Quirks;

use super::args::{AddArgs, ClientArgs, LoginArgs, QuirkArgs};
use super::signin;
use super::table::{expiry_text, opt, scopes_text, table};

/// A login body for `url` with the client the options choose; the client secret is read
/// from the environment variable they name (secrets never go in argv).
pub fn login_body(url: String, name: Option<String>, client: &ClientArgs) -> Result<Login> {
    Ok(Login {
        url,
        name,
        client_id: client.client_id.clone(),
        client_secret: secret_from(client.client_secret_env.as_deref(), "--client-secret-env")?,
        client_metadata_url: client.client_metadata_url.clone(),
        registration_token: secret_from(client.registration_token_env.as_deref(), "--registration-token-env")?,
        ..Login::default()
    })
}

/// The secret in the environment variable `var` names, if a flag names one.
fn secret_from(var: Option<&str>, flag: &str) -> Result<Option<Secret>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
        _ => bail!("{flag} names {var}, but that environment variable is not set"),
    }
}

pub async fn login(control: &Control, args: LoginArgs) -> Result<()> {
    let (url, name) = match Url::parse(&args.server) {
        Ok(_) => (args.server.clone(), args.name.clone()),
        Err(_) => match control.server(&args.server).await? {
            Some(known) => (known.url, Some(args.server.clone())),
            // A server a host named by URL, not signed in yet: its sign-in may be under way.
            None if control.status().await?.signins.iter().any(|s| s.server == args.server) => (String::new(), Some(args.server.clone())),
            None => bail!("{:?} is neither a URL nor a known server name", args.server),
        },
    };
    let mut body = login_body(url, name, &args.client)?;
    body.scopes = args.scope.as_deref().map(mcp_broker::oauth::discovery::www_authenticate::split_scopes).unwrap_or_default();
    body.timeout_secs = Some(args.timeout);
    body.method = signin::method(&args);
    body.headless = mcp_broker::oauth::login::browser::headless(|name| std::env::var(name).ok());
    body.quirks = quirks(&args.quirks, args.account.is_some());
    body.account = args.account.clone();
    let server = control.login(&body, |event| signin::show(control, event)).await?;
    println!("Signed in to {} ({}) with scopes: {}.", server.name, server.url, scopes_text(&server.scopes));
    Ok(())
}

/// The settings the flags give; `None` when no flag is given (the kept ones stay).
fn quirks(args: &QuirkArgs, account: bool) -> Option<Quirks> {
    let q = Quirks {
        authorize_params: args.authorize_param.clone(),
        no_resource_param: args.no_resource_param,
        callback_port: args.callback_port,
        assume_s256: args.assume_s256,
        select_account: account,
        auth_server: args.auth_server.clone(),
        redirect_uri: args.redirect_uri.clone(),
    };
    (q != Quirks::default()).then_some(q)
}

pub async fn status(control: &Control, json: bool) -> Result<()> {
    let status = control.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print_status(&status);
    Ok(())
}

/// The service's problems first (they explain what follows), then the servers.
fn print_status(status: &Status) {
    print!("{}", status_text(status));
}

fn status_text(status: &Status) -> String {
    let mut out = String::new();
    if !status.problems.is_empty() {
        out.push_str("Problems:\n");
        for p in &status.problems {
            out.push_str(&format!("  - {p}\n"));
        }
        out.push('\n');
    }
    out.push_str(&sign_ins_text(&status.signins));
    if status.servers.is_empty() {
        out.push_str("No servers yet. Sign in to one with: mcp-broker login <URL>\n");
        return out;
    }
    let rows: Vec<[String; 5]> = status
        .servers
        .iter()
        .map(|s| [s.name.clone(), opt(&s.account), scopes_text(&s.scopes), expiry_text(s.expires_at), s.state.as_str().replace('_', " ")])
        .collect();
    out.push_str(&table(["SERVER", "ACCOUNT", "SCOPES", "EXPIRES", "STATE"], &rows));
    let set: Vec<String> = status.servers.iter().filter(|s| !s.settings.is_empty()).map(|s| format!("  {}: {}\n", s.name, s.settings.join(" "))).collect();
    if !set.is_empty() {
        out.push_str(&format!("\nSign-in settings:\n{}", set.concat()));
    }
    out.push_str(&format!("\nHTTP endpoint: {}/servers/NAME/mcp\n", status.endpoint));
    out
}

/// The sign-ins waiting for the user, each with what to do and the command that joins it.
fn sign_ins_text(signins: &[SignIn]) -> String {
    if signins.is_empty() {
        return String::new();
    }
    let mut out = String::from("Sign-ins waiting for you:\n");
    for s in signins {
        let by = s.asked_by.as_deref().map(|h| format!(", for {h}")).unwrap_or_default();
        let url = s.url.as_ref().map(Url::as_str).unwrap_or_default();
        let what = match (s.how, &s.user_code) {
            (SignInHow::Device, Some(code)) => format!("enter the code {code} at {url}"),
            (SignInHow::Browser, _) => format!("finish it in the browser, or open {url}"),
            (SignInHow::Paste | SignInHow::Device, _) => format!("open {url}"),
            (SignInHow::Starting, _) => "starting".to_owned(),
        };
        out.push_str(&format!("  - {}{by}: {what}\n    (`mcp-broker login {}` follows it here)\n", s.server, s.server));
    }
    out.push('\n');
    out
}

pub async fn refresh(control: &Control, name: &str) -> Result<()> {
    let refreshed = control.refresh(name).await?;
    println!("Refreshed {name}; the access token expires {}.", expiry_text(refreshed.server.expires_at));
    Ok(())
}

pub async fn logout(control: &Control, name: &str, local: bool) -> Result<()> {
    let out = control.logout(name, local).await?;
    let how = if out.revoked { "revoked at the authorization server and forgotten" } else { "forgotten (not revoked)" };
    println!("Signed out of {name}: tokens {how}.");
    Ok(())
}

/// `add NAME URL --bearer-env VAR | --header-env H=VAR`: the key's values from the
/// environment, or asked on the terminal when the variable is not set.
pub async fn add(control: &Control, args: AddArgs) -> Result<()> {
    let mut headers = Vec::new();
    if let Some(var) = &args.bearer_env {
        let key = key_from(var, "Authorization")?;
        headers.push(KeyHeader { name: "Authorization".into(), value: Secret::new(format!("Bearer {}", key.expose())) });
    }
    for pair in &args.header_env {
        let Some((header, var)) = pair.split_once('=') else { bail!("--header-env takes HEADER=VAR (e.g. X-Api-Key=LINEAR_KEY), not {pair:?}") };
        headers.push(KeyHeader { name: header.trim().to_owned(), value: key_from(var.trim(), header)? });
    }
    let added = control.add_server(&AddServer { name: args.name.clone(), url: args.url.clone(), headers }).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&added)?);
    } else {
        println!("Added {} ({}); its key is in the keychain. Hosts use it with `mcp-broker connect {}`.", args.name, added.server.url, args.name);
    }
    Ok(())
}

/// The value of `var`; when it is not set and this is a terminal, asked without echo.
fn key_from(var: &str, header: &str) -> Result<Secret> {
    if let Ok(v) = std::env::var(var) {
        if !v.is_empty() {
            return Ok(Secret::new(v));
        }
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("{var} is not set: set it to the key (it is read from the environment, never from the command line)");
    }
    let v = rpassword::prompt_password(format!("{var} is not set; the key for {header}: "))?;
    if v.is_empty() {
        bail!("no key given");
    }
    Ok(Secret::new(v))
}

#[cfg(test)]
mod tests {
    use mcp_broker::service::api::{Server, Status};
    use mcp_broker::vault::ServerState;

    use super::status_text;

    fn status(problems: &[&str], servers: Vec<Server>) -> Status {
        Status { servers, endpoint: "http://127.0.0.1:7".into(), version: "v".into(), problems: problems.iter().map(|p| p.to_string()).collect(), signins: vec![] }
    }

    #[test]
    fn sign_ins_waiting_say_what_to_do_and_how_to_follow_them() {
        use mcp_broker::service::api::{SignIn, SignInHow};
        let t = time::OffsetDateTime::UNIX_EPOCH;
        let mut st = status(&[], vec![]);
        st.signins = vec![
            SignIn { server: "linear".into(), asked_by: Some("cursor".into()), started_at: t, how: SignInHow::Paste, url: Some("https://as.example/authorize?state=s".parse().unwrap()), user_code: None },
            SignIn { server: "notion".into(), asked_by: None, started_at: t, how: SignInHow::Device, url: Some("https://as.example/device".parse().unwrap()), user_code: Some("WDJB-MJHT".into()) },
        ];
        let text = status_text(&st);
        assert!(text.starts_with("Sign-ins waiting for you:\n  - linear, for cursor: open https://as.example/authorize?state=s\n    (`mcp-broker login linear` follows it here)\n"), "{text}");
        assert!(text.contains("  - notion: enter the code WDJB-MJHT at https://as.example/device\n"), "{text}");
    }

    #[test]
    fn problems_come_first() {
        let text = status_text(&status(&["consent.json is damaged"], vec![]));
        assert!(text.starts_with("Problems:\n  - consent.json is damaged\n\n"), "{text}");
        assert!(text.contains("No servers yet"));
        assert!(!status_text(&status(&[], vec![])).contains("Problems"));
    }

    #[test]
    fn servers_are_a_table_with_the_endpoint() {
        let server = Server {
            name: "linear".into(),
            url: "u".into(),
            resource: "u".into(),
            state: ServerState::NeedsLogin,
            issuer: "i".into(),
            client_id: "c".into(),
            account: None,
            scopes: vec!["read".into(), "write".into()],
            expires_at: None,
            has_refresh_token: false,
            last_used_at: None,
            last_error: None,
            settings: vec!["--no-resource-param".into()],
        };
        let text = status_text(&status(&[], vec![server]));
        assert!(text.contains("linear  -        read write  -        needs login"), "{text}");
        assert!(text.contains("Sign-in settings:\n  linear: --no-resource-param\n"), "{text}");
        assert!(text.ends_with("HTTP endpoint: http://127.0.0.1:7/servers/NAME/mcp\n"), "{text}");
    }
}
