//! Reading a host entry that runs mcp-remote (`npx -y mcp-remote@latest URL [PORT] [flags]`):
//! the server URL, and the flags that change how it signs in, so that switching to the
//! broker can carry them over or say which it does not.
//!
//! mcp-remote's own flags (0.1.x): `--header "Name: value"`, `--transport`, `--host`,
//! `--allow-http`, `--resource URL`, `--static-oauth-client-info JSON|@file`,
//! `--static-oauth-client-metadata JSON|@file`, `--auth-timeout S`, `--debug`, `--silent`,
//! `--enable-proxy`, `--ignore-tool PATTERN`, and a callback port as a bare number.

use serde::Serialize;

/// What an mcp-remote command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct McpRemote {
    pub url: String,
    /// `--header` values, as `Name: value` (values may hold secrets: never print them).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    pub resource: Option<String>,
    /// `--static-oauth-client-info`: a pre-registered client (JSON or `@file`).
    #[serde(skip)]
    pub static_client_info: Option<String>,
    /// Flags the broker does not carry over, as they were given (values left out).
    pub not_carried: Vec<String>,
}

/// Flags that take a value.
const WITH_VALUE: &[&str] = &[
    "--header",
    "--transport",
    "--host",
    "--resource",
    "--static-oauth-client-info",
    "--static-oauth-client-metadata",
    "--auth-timeout",
    "--ignore-tool",
];

/// Whether a command word is mcp-remote itself (`mcp-remote`, `mcp-remote@0.1.29`,
/// `/usr/lib/node_modules/mcp-remote/dist/proxy.js`, `…/bin/mcp-remote`).
fn is_mcp_remote(word: &str) -> bool {
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    base == "mcp-remote" || base.starts_with("mcp-remote@") || word.contains("mcp-remote/dist/proxy.js")
}

/// Parse `command` + `args` when they run mcp-remote; `None` otherwise (or with no URL).
pub fn parse(command: &str, args: &[String]) -> Option<McpRemote> {
    let words: Vec<&str> = std::iter::once(command).chain(args.iter().map(String::as_str)).collect();
    let start = words.iter().position(|w| is_mcp_remote(w))? + 1;
    let mut out = McpRemote::default();
    let mut rest = words[start..].iter();
    while let Some(&word) = rest.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (word, None),
        };
        if !flag.starts_with("--") {
            if out.url.is_empty() && (word.starts_with("https://") || word.starts_with("http://")) {
                out.url = word.to_owned();
            } else if word.parse::<u16>().is_ok() {
                out.not_carried.push(format!("callback port {word}"));
            }
            continue;
        }
        let value = if WITH_VALUE.contains(&flag) { inline.or_else(|| rest.next().map(|v| (*v).to_owned())) } else { None };
        take_flag(&mut out, flag, value);
    }
    (!out.url.is_empty()).then_some(out)
}

fn take_flag(out: &mut McpRemote, flag: &str, value: Option<String>) {
    match (flag, value) {
        ("--header", Some(v)) => {
            if let Some((name, value)) = v.split_once(':') {
                out.headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        ("--resource", Some(v)) => out.resource = Some(v),
        ("--static-oauth-client-info", Some(v)) => out.static_client_info = Some(v),
        // Transport choice, proxy use and logging are the broker's own business.
        ("--transport" | "--debug" | "--silent" | "--enable-proxy" | "--allow-http" | "--host" | "--auth-timeout", _) => {}
        (other, _) => out.not_carried.push(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn npx_with_version_url_and_flags() {
        let r = parse(
            "npx",
            &args(&["-y", "mcp-remote@0.1.29", "https://mcp.linear.app/mcp", "9876", "--header", "Authorization: Bearer ${TOKEN}", "--transport", "http-only"]),
        )
        .expect("mcp-remote");
        assert_eq!(r.url, "https://mcp.linear.app/mcp");
        assert_eq!(r.headers, vec![("Authorization".to_owned(), "Bearer ${TOKEN}".to_owned())]);
        assert_eq!(r.not_carried, ["callback port 9876"]);
    }

    #[test]
    fn inline_values_and_unknown_flags() {
        let r = parse("mcp-remote", &args(&["https://x.example/sse", "--resource=https://x.example/", "--ignore-tool", "delete*", "--static-oauth-client-metadata", "{}"]))
            .expect("mcp-remote");
        assert_eq!(r.resource.as_deref(), Some("https://x.example/"));
        assert_eq!(r.not_carried, ["--ignore-tool", "--static-oauth-client-metadata"]);
    }

    #[test]
    fn node_running_the_package_file() {
        let r = parse("node", &args(&["/usr/lib/node_modules/mcp-remote/dist/proxy.js", "http://127.0.0.1:3000/mcp", "--allow-http"]));
        assert_eq!(r.map(|r| r.url).as_deref(), Some("http://127.0.0.1:3000/mcp"));
    }

    #[test]
    fn other_commands_are_not_mcp_remote() {
        assert_eq!(parse("npx", &args(&["-y", "@modelcontextprotocol/server-github"])), None);
        assert_eq!(parse("npx", &args(&["mcp-remote-helper", "https://x"])), None);
        assert_eq!(parse("npx", &args(&["mcp-remote"])), None, "no URL");
    }

    #[test]
    fn static_client_info_is_kept_out_of_serialization() {
        let r = parse("npx", &args(&["mcp-remote", "https://x.example/mcp", "--static-oauth-client-info", r#"{"client_id":"a","client_secret":"s"}"#])).expect("parsed");
        assert!(r.static_client_info.is_some());
        let json = serde_json::to_string(&r).expect("json");
        assert!(!json.contains("client_secret"), "{json}");
    }
}
