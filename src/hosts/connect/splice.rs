//! Editing a host's JSON config without touching anything else: find the bytes of one server
//! entry's value, and put other bytes in their place. Every byte outside the entry stays as
//! the user (or their host) wrote it: comments, key order, indentation, unknown keys; and an
//! entry put back with its original bytes makes the file byte-for-byte what it was.
//!
//! Hand-written on top of jsonc-parser's AST because its ranges are exactly what a splice
//! needs; its CST re-renders the values it edits.

use std::ops::Range;

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Ranged;

use crate::hosts::detect::jsonc_options;

/// Where an entry sits: the key of the host's server list and, for Claude Code's local
/// scope, the project directory under `projects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    pub servers_key: &'static str,
    pub project: Option<String>,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpliceError {
    #[error("it is not valid JSON: {0}")]
    Parse(String),
    #[error("it has no server {0:?}")]
    NoEntry(String),
}

/// The byte range of the entry's value (from its `{` to its `}`).
pub fn find(text: &str, path: &EntryPath) -> Result<Range<usize>, SpliceError> {
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &jsonc_options()).map_err(|e| SpliceError::Parse(e.to_string()))?;
    let missing = || SpliceError::NoEntry(path.name.clone());
    let root = parsed.value.as_ref().and_then(Value::as_object).ok_or_else(missing)?;
    let list = match &path.project {
        None => root.get_object(path.servers_key),
        Some(dir) => root.get_object("projects").and_then(|p| p.get_object(dir)).and_then(|p| p.get_object(path.servers_key)),
    };
    let entry = list.and_then(|l: &Object| l.get(&path.name)).ok_or_else(missing)?;
    let r = entry.value.range();
    Ok(r.start..r.end)
}

/// `text` with `range` replaced by `with`.
pub fn replace(text: &str, range: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str) -> EntryPath {
        EntryPath { servers_key: "mcpServers", project: None, name: name.to_owned() }
    }

    const FILE: &str = r#"{
  // keep me
  "theme": "dark",
  "mcpServers": {
    "linear": { "command": "npx", "args": ["-y", "mcp-remote", "https://mcp.linear.app/mcp"] },
    "git": {"command": "uvx"},
  },
  "projects": { "/src/a": { "mcpServers": { "api": {"url": "https://a.example/mcp"} } } }
}
"#;

    #[test]
    fn finds_the_value_and_splices_only_it() {
        let r = find(FILE, &at("linear")).expect("found");
        assert!(FILE[r.clone()].starts_with("{ \"command\": \"npx\"") && FILE[r.clone()].ends_with("] }"), "{}", &FILE[r.clone()]);
        let edited = replace(FILE, r.clone(), r#"{"command": "mcp-broker", "args": ["connect", "linear"]}"#);
        assert!(edited.contains("// keep me") && edited.contains("\"git\": {\"command\": \"uvx\"},"));
        let back = find(&edited, &at("linear")).expect("found again");
        assert_eq!(replace(&edited, back, &FILE[r]), FILE, "byte for byte");
    }

    #[test]
    fn project_scope() {
        let path = EntryPath { servers_key: "mcpServers", project: Some("/src/a".into()), name: "api".into() };
        let r = find(FILE, &path).expect("found");
        assert_eq!(&FILE[r], r#"{"url": "https://a.example/mcp"}"#);
    }

    #[test]
    fn missing_entries_and_broken_files() {
        assert_eq!(find(FILE, &at("nope")), Err(SpliceError::NoEntry("nope".into())));
        assert!(matches!(find("{\"mcpServers\": {", &at("x")), Err(SpliceError::Parse(_))));
        assert!(matches!(find("{'mcpServers': {}}", &at("x")), Err(SpliceError::Parse(_))), "single quotes are not JSON");
        assert_eq!(find("[]", &at("x")), Err(SpliceError::NoEntry("x".into())));
    }

    #[test]
    fn multibyte_text_around_the_entry() {
        let text = "{\"name\": \"Zürich ☕\", \"mcpServers\": {\"é\": {\"url\": \"https://é.example\"}}}";
        let r = find(text, &at("é")).expect("found");
        assert_eq!(&text[r.clone()], "{\"url\": \"https://é.example\"}");
        assert_eq!(replace(text, r, "{}"), "{\"name\": \"Zürich ☕\", \"mcpServers\": {\"é\": {}}}");
    }
}
