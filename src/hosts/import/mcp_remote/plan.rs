//! What each store entry becomes: a grant ready for [`crate::broker::Broker::import`] (its
//! server found, its client and tokens both readable), not matched to any server (the hash
//! of no candidate), or incomplete (why it cannot be imported).

use time::OffsetDateTime;

use super::{find, Candidate, ClientInfo, Store, StoreEntry, Tokens};
use crate::broker::{ImportedClient, ImportedTokens};

/// One store entry and what becomes of it.
#[derive(Debug)]
pub struct Planned<'a> {
    pub entry: &'a StoreEntry,
    pub outcome: Outcome<'a>,
}

/// What the broker is given to import.
#[derive(Debug)]
pub struct Grant {
    pub client: ImportedClient,
    pub tokens: ImportedTokens,
}

#[derive(Debug)]
pub enum Outcome<'a> {
    Ready { candidate: &'a Candidate, grant: Box<Grant> },
    NotMatched,
    Incomplete { candidate: &'a Candidate, why: &'static str },
}

/// The plan for every entry of `store`, in store order.
pub fn plan<'a>(store: &'a Store, candidates: &'a [Candidate]) -> Vec<Planned<'a>> {
    store.entries.iter().map(|entry| Planned { entry, outcome: outcome(entry, candidates) }).collect()
}

fn outcome<'a>(entry: &'a StoreEntry, candidates: &'a [Candidate]) -> Outcome<'a> {
    let Some(candidate) = find(candidates, &entry.hash) else { return Outcome::NotMatched };
    let why = match (&entry.client, &entry.tokens) {
        (_, None) => "it holds no readable tokens (a sign-in that did not finish, or a damaged file)",
        (None, Some(_)) => "it holds no readable client registration (mcp-remote used a static client or a metadata document)",
        (Some(c), Some(_)) if secret_expired(c, OffsetDateTime::now_utc()) => "its client secret has expired",
        (Some(c), Some(t)) => return Outcome::Ready { candidate, grant: Box::new(Grant { client: client(c), tokens: tokens(t) }) },
    };
    Outcome::Incomplete { candidate, why }
}

/// RFC 7591 §3.2.1: `client_secret_expires_at` is seconds since the epoch, 0 for never.
fn secret_expired(c: &ClientInfo, now: OffsetDateTime) -> bool {
    c.client_secret.is_some() && c.client_secret_expires_at.is_some_and(|at| at > 0.0 && at < now.unix_timestamp() as f64)
}

fn client(c: &ClientInfo) -> ImportedClient {
    ImportedClient {
        client_id: c.client_id.clone(),
        client_secret: c.client_secret.clone(),
        auth_method: c.token_endpoint_auth_method.clone(),
        issuer: c.issuer.clone(),
    }
}

fn tokens(t: &Tokens) -> ImportedTokens {
    ImportedTokens {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone(),
        token_type: t.token_type.clone(),
        expires_at: t.expires_at(),
        scopes: t.scopes(),
        issuer: t.issuer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_store;
    use super::*;

    const A: &str = "15b9982bbc0f6c97e59b3c224d8cad5a"; // https://mcp.example/mcp
    const CLIENT: &str = r#"{"client_id":"c-1","client_secret":"s","client_secret_expires_at":0,"redirect_uris":[]}"#;
    const TOKENS: &str = r#"{"access_token":"at-1","token_type":"Bearer","refresh_token":"rt-1","scope":"read"}"#;

    fn store(files: &[(&str, &str)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("mcp-remote-v1")).expect("mkdir");
        for (name, text) in files {
            std::fs::write(dir.path().join("mcp-remote-v1").join(name), text).expect("write");
        }
        let s = read_store(dir.path());
        (dir, s)
    }

    #[test]
    fn a_matched_complete_entry_is_ready_with_its_secrets_carried_over() {
        let (_d, s) = store(&[(&format!("{A}_client_info.json"), CLIENT), (&format!("{A}_tokens.json"), TOKENS)]);
        let candidates = [Candidate::from_url("https://mcp.example/mcp")];
        let p = plan(&s, &candidates);
        let Outcome::Ready { candidate, grant } = &p[0].outcome else { panic!("{:?}", p[0].outcome) };
        let Grant { client, tokens } = grant.as_ref();
        assert_eq!(candidate.url, "https://mcp.example/mcp");
        assert_eq!((client.client_id.as_str(), client.client_secret.as_ref().map(|s| s.expose())), ("c-1", Some("s")));
        assert_eq!((tokens.refresh_token.as_ref().map(|r| r.secret().as_str()), tokens.scopes.clone()), (Some("rt-1"), vec!["read".to_owned()]));
    }

    #[test]
    fn unmatched_and_incomplete_entries_say_so() {
        let (_d, s) = store(&[(&format!("{A}_tokens.json"), TOKENS), ("0123456789abcdef0123456789abcdef_tokens.json", TOKENS)]);
        let candidates = [Candidate::from_url("https://mcp.example/mcp")];
        let p = plan(&s, &candidates);
        assert!(matches!(p[0].outcome, Outcome::NotMatched), "{:?}", p[0].outcome);
        assert!(matches!(p[1].outcome, Outcome::Incomplete { why, .. } if why.contains("no readable client")), "{:?}", p[1].outcome);
        let (_d, s) = store(&[(&format!("{A}_client_info.json"), &CLIENT.replace(":0,", ":1000,")), (&format!("{A}_tokens.json"), TOKENS)]);
        assert!(matches!(plan(&s, &candidates)[0].outcome, Outcome::Incomplete { why: "its client secret has expired", .. }));
    }
}
