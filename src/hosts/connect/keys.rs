//! Taking a key out of a host's file. A remote entry that sends a credential in a static
//! header (`"headers": {"Authorization": "Bearer sk-…"}`, or mcp-remote's
//! `--header "Authorization: Bearer ${TOKEN}"` with `TOKEN` in its `env`) becomes one of the
//! broker's API-key servers: the headers go to the keychain, the entry runs
//! `mcp-broker connect NAME`, and its old text goes to the keychain too (for `disconnect`).
//! What stays on disk of that old text (the ledger, the diff, the backup) has each secret
//! value replaced by [`MARK`].

use std::collections::BTreeMap;

use crate::broker::api_keys::KeyHeader;
use crate::hosts::detect::entry::{plaintext, secret_name, Sends};
use crate::secret::Secret;

/// What stands in the kept copies where a secret was.
pub const MARK: &str = "<moved to the keychain by mcp-broker>";

/// The key an entry sends, ready for the keychain.
#[derive(Debug, Clone)]
pub struct TakenKey {
    /// Every header the entry sends, `${VAR}`s resolved: the broker's server sends them all.
    pub headers: Vec<KeyHeader>,
    /// The secret values as they stand in the file (header values, or the `env` values
    /// they name), to be marked in what is kept on disk.
    pub pieces: Vec<Secret>,
}

/// What an entry's headers become.
#[derive(Debug)]
pub enum Headers {
    /// It sends none.
    None,
    /// It sends only headers that carry no credential: named, since the broker does not
    /// send them for an OAuth server.
    Plain(Vec<String>),
    /// It sends a key.
    Key(TakenKey),
}

/// Sort an entry's headers: a key to take, plain headers to report, or why it cannot be taken.
pub fn take(sends: &Sends) -> Result<Headers, String> {
    if sends.headers.is_empty() {
        return Ok(Headers::None);
    }
    let mut headers = Vec::new();
    let mut pieces = Vec::new();
    for (name, value) in &sends.headers {
        let (resolved, used) = resolve(value.expose(), &sends.env).map_err(|var| {
            format!(
                "its header {name} takes its value from ${{{var}}} when the host starts, which mcp-broker cannot read: \
                 add it with `mcp-broker add NAME URL --header-env {name}=VAR`, then connect the entry by hand"
            )
        })?;
        if secret_name(name) {
            if used.is_empty() {
                pieces.push(value.clone());
            }
            pieces.extend(used.into_iter().filter(|v| plaintext(v.expose())));
        }
        headers.push(KeyHeader { name: name.clone(), value: Secret::new(resolved) });
    }
    if pieces.is_empty() {
        return Ok(Headers::Plain(headers.into_iter().map(|h| h.name).collect()));
    }
    Ok(Headers::Key(TakenKey { headers, pieces }))
}

/// `value` with each `${VAR}` replaced by the entry's `env` value (as mcp-remote does), and
/// the values used; the variable's name when the entry does not set it.
fn resolve(value: &str, env: &BTreeMap<String, Secret>) -> Result<(String, Vec<Secret>), String> {
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else { break };
        let var = &rest[start + 2..start + len];
        let found = env.get(var).ok_or_else(|| var.to_owned())?;
        out.push_str(&rest[..start]);
        out.push_str(found.expose());
        used.push(found.clone());
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok((out, used))
}

/// `text` with every secret piece replaced by [`MARK`]; refused when a piece is written in a
/// way this cannot find (escaped differently), since the copy kept on disk would hold it.
pub fn redact(text: &str, pieces: &[Secret]) -> Result<String, String> {
    let mut out = text.to_owned();
    // Longest first: a piece inside another is marked with it.
    let mut sorted: Vec<&Secret> = pieces.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.expose().len()));
    for piece in sorted {
        let escaped = json_escaped(piece.expose());
        if escaped.is_empty() {
            continue;
        }
        out = out.replace(&escaped, MARK);
    }
    if still_holds(&out, pieces) {
        return Err("its key is written in a way mcp-broker cannot take out of the file safely; left as it is".into());
    }
    Ok(out)
}

/// Whether any string of `text` (an entry's JSON value, or its TOML table), read as the host
/// reads it (escapes decoded), still holds a piece; text that reads as neither counts as holding.
fn still_holds(text: &str, pieces: &[Secret]) -> bool {
    let holds = |s: &str| pieces.iter().any(|p| !p.expose().is_empty() && s.contains(p.expose()));
    if let Ok(Some(v)) = jsonc_parser::parse_to_serde_value::<Option<serde_json::Value>>(text, &crate::hosts::detect::jsonc_options()) {
        return json_strings(&v).any(holds);
    }
    match text.parse::<toml::Table>() {
        Ok(t) => toml_strings(&toml::Value::Table(t)).into_iter().any(|s| holds(&s)),
        Err(_) => true,
    }
}

fn json_strings(v: &serde_json::Value) -> Box<dyn Iterator<Item = &str> + '_> {
    match v {
        serde_json::Value::String(s) => Box::new(std::iter::once(s.as_str())),
        serde_json::Value::Array(a) => Box::new(a.iter().flat_map(json_strings)),
        serde_json::Value::Object(o) => Box::new(o.iter().flat_map(|(k, v)| std::iter::once(k.as_str()).chain(json_strings(v)))),
        _ => Box::new(std::iter::empty()),
    }
}

fn toml_strings(v: &toml::Value) -> Vec<String> {
    match v {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(a) => a.iter().flat_map(toml_strings).collect(),
        toml::Value::Table(t) => t.iter().flat_map(|(k, v)| std::iter::once(k.clone()).chain(toml_strings(v))).collect(),
        _ => Vec::new(),
    }
}

/// A string as it stands between the quotes of a JSON (or TOML basic) string.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_owned()
}

/// The broker's name for an entry's server: the entry's own name where the broker allows it
/// (letters, digits, `.`, `-`, `_`, at most 64), else that name with the rest made `-`.
pub fn server_name(entry: &str) -> String {
    let mut name: String = entry.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).take(64).collect();
    name = name.trim_start_matches(['.', '-']).to_owned();
    if name.is_empty() { "server".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(headers: &[(&str, &str)], env: &[(&str, &str)]) -> Sends {
        Sends {
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), Secret::new(*v))).collect(),
            env: env.iter().map(|(n, v)| ((*n).to_owned(), Secret::new(*v))).collect(),
        }
    }

    fn key(s: &Sends) -> TakenKey {
        match take(s).expect("taken") {
            Headers::Key(k) => k,
            other => panic!("not a key: {other:?}"),
        }
    }

    #[test]
    fn static_headers_become_a_key() {
        let k = key(&sends(&[("Authorization", "Bearer sk-1"), ("X-Org", "acme")], &[]));
        let h: Vec<_> = k.headers.iter().map(|h| (h.name.as_str(), h.value.expose())).collect();
        assert_eq!(h, [("Authorization", "Bearer sk-1"), ("X-Org", "acme")]);
        assert_eq!(k.pieces.iter().map(Secret::expose).collect::<Vec<_>>(), ["Bearer sk-1"]);
    }

    #[test]
    fn mcp_remote_env_references_are_resolved() {
        let k = key(&sends(&[("Authorization", "Bearer ${TOKEN}")], &[("TOKEN", "sk-2"), ("OTHER", "x")]));
        assert_eq!(k.headers[0].value.expose(), "Bearer sk-2");
        assert_eq!(k.pieces.iter().map(Secret::expose).collect::<Vec<_>>(), ["sk-2"]);
        let err = take(&sends(&[("Authorization", "Bearer ${MISSING}")], &[])).expect_err("refused");
        assert!(err.contains("${MISSING}") && err.contains("--header-env Authorization=VAR"), "{err}");
        let err = take(&sends(&[("X-Api-Key", "${input:key}")], &[])).expect_err("VS Code input");
        assert!(err.contains("${input:key}"), "{err}");
    }

    #[test]
    fn plain_headers_are_named_not_taken() {
        assert!(matches!(take(&sends(&[("X-Org", "acme")], &[])), Ok(Headers::Plain(n)) if n == ["X-Org"]));
        assert!(matches!(take(&Sends::default()), Ok(Headers::None)));
    }

    #[test]
    fn redaction_marks_every_piece_or_refuses() {
        let text = r#"{"url": "https://a.example/mcp", "headers": {"Authorization": "Bearer sk-\"1"}, "args": ["Bearer sk-\"1 again"]}"#;
        let out = redact(text, &[Secret::new("Bearer sk-\"1")]).expect("marked");
        assert_eq!(out, format!(r#"{{"url": "https://a.example/mcp", "headers": {{"Authorization": "{MARK}"}}, "args": ["{MARK} again"]}}"#));
        // Written with escapes of the file's own: the host reads the key there, so refused.
        let odd = r#"{"headers": {"Authorization": "Bearer \u0073k-1"}}"#;
        assert!(redact(odd, &[Secret::new("Bearer sk-1")]).is_err());
        let partly = r#"{"headers": {"Authorization": "Bearer sk\/1"}, "note": "sk/1"}"#;
        assert!(redact(partly, &[Secret::new("sk/1")]).is_err());
        let toml = "[mcp_servers.a]\nurl = \"https://a.example/mcp\"\nhttp_headers = { Authorization = \"Bearer sk-3\" }\n";
        assert_eq!(redact(toml, &[Secret::new("Bearer sk-3")]).expect("toml"), format!("[mcp_servers.a]\nurl = \"https://a.example/mcp\"\nhttp_headers = {{ Authorization = \"{MARK}\" }}\n"));
    }

    #[test]
    fn server_names() {
        assert_eq!(server_name("linear"), "linear");
        assert_eq!(server_name("my server/α"), "my-server--");
        assert_eq!(server_name("..x"), "x");
        assert_eq!(server_name("///"), "server");
    }
}
