//! Which server a store entry belongs to. mcp-remote names its files after an MD5 of the
//! server URL exactly as it was given, joined by `|` with what else changes the grant: the
//! `--resource` value, the `--authorize-param`s and the `--header`s (each as sorted-key JSON,
//! values as written, before `${VAR}` substitution), `--client-metadata-url` and
//! `--token-endpoint`. The hash cannot be undone, so each candidate (a host config entry
//! running mcp-remote, or a `--url` the user names) is hashed the same way and compared.
//!
//! The parts host configs give are the URL, the resource and the headers; an entry that also
//! used the other flags does not match, and is reported as not matched.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde::Serialize;

use crate::hosts::detect::entry::Transport;
use crate::hosts::detect::mcp_remote::McpRemote;
use crate::hosts::detect::DetectedConfig;

/// A server URL a store entry may belong to, with the flags mcp-remote hashed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub url: String,
    pub resource: Option<String>,
    /// Header values may be secrets: never serialized.
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// Where it was found: `--url`, or the host, file and entry name.
    pub source: String,
}

impl Candidate {
    /// A URL the user named, as mcp-remote would be run with it and no flags.
    pub fn from_url(url: &str) -> Self {
        Self { url: url.to_owned(), resource: None, headers: Vec::new(), source: "--url".to_owned() }
    }

    /// A host config entry running mcp-remote.
    pub fn from_mcp_remote(remote: &McpRemote, source: String) -> Self {
        // mcp-remote trims `--resource`; an empty one, or `--disable-resource-parameter`,
        // means no resource at all.
        let disabled = remote.not_carried.iter().any(|f| f == "--disable-resource-parameter");
        let resource = remote.resource.as_deref().map(str::trim).filter(|r| !r.is_empty() && !disabled).map(str::to_owned);
        Self { url: remote.url.clone(), resource, headers: remote.headers.clone(), source }
    }

    /// mcp-remote's name for this server's files.
    pub fn hash(&self) -> String {
        server_url_hash(&self.url, self.resource.as_deref(), &self.headers)
    }
}

/// mcp-remote's `getServerUrlHash` for a URL, a resource and headers (the other parts absent).
pub fn server_url_hash(url: &str, resource: Option<&str>, headers: &[(String, String)]) -> String {
    let mut parts = vec![url.to_owned()];
    parts.extend(resource.map(str::to_owned));
    if !headers.is_empty() {
        // A JS object keeps the last value of a repeated name; JSON.stringify with the sorted
        // key list writes `{"A":"1","B":"2"}`, escaping as serde_json does.
        let sorted: BTreeMap<&str, &str> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        parts.push(serde_json::to_string(&sorted).unwrap_or_default());
    }
    let digest = Md5::digest(parts.join("|").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The candidates: every host config entry that runs mcp-remote (or that was switched to
/// `mcp-broker connect URL`, with that URL alone), then each `--url`.
/// Repeats (one server named by two hosts) are kept once.
pub fn candidates(configs: &[DetectedConfig], urls: &[String]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for config in configs {
        for server in &config.servers {
            let source = format!("{} {}: {}", config.host_name, config.path.display(), server.name);
            match &server.transport {
                Transport::McpRemote(remote) => push_new(&mut out, Candidate::from_mcp_remote(remote, source)),
                // Switched already (`mcp-broker connect URL`): mcp-remote ran with that URL before.
                Transport::Broker { server: target } if target.starts_with("https://") || target.starts_with("http://") => {
                    push_new(&mut out, Candidate { source, ..Candidate::from_url(target) })
                }
                _ => {}
            }
        }
    }
    for url in urls {
        push_new(&mut out, Candidate::from_url(url));
    }
    out
}

fn push_new(out: &mut Vec<Candidate>, c: Candidate) {
    let hash = c.hash();
    if !out.iter().any(|o| o.hash() == hash) {
        out.push(c);
    }
}

/// The candidate whose hash is `hash`, if any.
pub fn find<'a>(candidates: &'a [Candidate], hash: &str) -> Option<&'a Candidate> {
    candidates.iter().find(|c| c.hash().eq_ignore_ascii_case(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str, v: &str) -> (String, String) {
        (n.to_owned(), v.to_owned())
    }

    /// Values computed with mcp-remote 0.15.1's own function under Node.
    #[test]
    fn the_hash_is_mcp_remotes() {
        assert_eq!(server_url_hash("https://mcp.example/mcp", None, &[]), "15b9982bbc0f6c97e59b3c224d8cad5a");
        assert_eq!(server_url_hash("https://mcp.example/mcp", Some("https://mcp.example/"), &[]), "52d7ccb339cd5f3594359c941127c237");
        let headers = [h("X-Tenant", "a\"b"), h("Authorization", "Bearer ${TOKEN}")];
        assert_eq!(server_url_hash("https://mcp.example/mcp", None, &headers), "b78d617aecafab3c855b876fb8923852");
    }

    #[test]
    fn candidates_come_from_mcp_remote_entries_and_urls_once_each() {
        let remote = |url: &str, resource: Option<&str>, not_carried: &[&str]| McpRemote {
            url: url.into(),
            resource: resource.map(str::to_owned),
            not_carried: not_carried.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let c = Candidate::from_mcp_remote(&remote("https://a.example/mcp", Some(" https://a.example/ "), &[]), "x".into());
        assert_eq!(c.resource.as_deref(), Some("https://a.example/"));
        let off = Candidate::from_mcp_remote(&remote("https://a.example/mcp", Some("https://a.example/"), &["--disable-resource-parameter"]), "x".into());
        assert_eq!(off.hash(), Candidate::from_url("https://a.example/mcp").hash());
        let config = |transport: Transport| DetectedConfig {
            host: crate::hosts::detect::HostKind::ClaudeCode,
            host_name: "Claude Code",
            path: "/h/.claude.json".into(),
            scope: crate::hosts::detect::Scope::User,
            servers: vec![crate::hosts::detect::DetectedServer { name: "s".into(), project: None, transport, plaintext_secrets: vec![], sends: Default::default(), local: Default::default() }],
            error: None,
        };
        let configs = [
            config(Transport::McpRemote(remote("https://b.example/mcp", None, &[]))),
            config(Transport::Broker { server: "https://c.example/mcp".into() }),
            config(Transport::Broker { server: "named".into() }),
            config(Transport::Remote { url: "https://d.example/mcp".into() }),
        ];
        let urls: Vec<_> = candidates(&configs, &[]).into_iter().map(|c| (c.url, c.source)).collect();
        let source = "Claude Code /h/.claude.json: s".to_owned();
        assert_eq!(urls, [("https://b.example/mcp".to_owned(), source.clone()), ("https://c.example/mcp".to_owned(), source)]);
        let found = candidates(&[], &["https://a.example/mcp".into(), "https://a.example/mcp".into()]);
        assert_eq!(found.len(), 1);
        assert!(find(&found, &server_url_hash("https://a.example/mcp", None, &[]).to_uppercase()).is_some());
        assert!(find(&found, "0123").is_none());
    }
}
