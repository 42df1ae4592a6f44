//! Editing Codex CLI's `config.toml` without touching anything else: find the bytes of one
//! `mcp_servers` entry, and write the entry that replaces it. Every byte outside the entry
//! stays as written (comments, blank lines, key order, the model settings, other tables), and
//! an entry put back with its original bytes makes the file byte-for-byte what it was.
//!
//! Two shapes are spliced:
//!
//! - [`Shape::Table`]: `[mcp_servers.NAME]` and its keys, with its own sub-tables
//!   (`[mcp_servers.NAME.env]`), from the `[` of its header to the end of its last line. The
//!   comments and blank lines before the next table stay outside, with that table.
//! - [`Shape::Inline`]: an inline table, `mcp_servers.NAME = { … }` or `NAME = { … }` under
//!   `[mcp_servers]`: the value from `{` to `}`, as in the JSON files.
//!
//! Anything else is refused with the reason ([`TomlSpliceError::Unsafe`]): an entry written as
//! dotted keys (`NAME.command = …` under `[mcp_servers]`), one without a header of its own
//! (only `[mcp_servers.NAME.env]`), and one whose tables are apart with another table between
//! them, where no single byte range holds the entry and nothing else.
//!
//! `toml_edit` parses, and gives the spans of headers, keys and values; the new entry's
//! strings and keys are written by it too (quoted and escaped as TOML wants).

use std::ops::Range;

use toml_edit::{Array, Document, DocumentMut, InlineTable, Item, Table, Value};

use super::splice::EntryPath;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TomlSpliceError {
    #[error("it is not valid TOML: {0}")]
    Parse(String),
    #[error("it has no server {0:?}")]
    NoEntry(String),
    /// The entry is there, in a shape no byte range of which is the entry alone.
    #[error("{0}; rewrite it as a [mcp_servers.NAME] table or an inline table, or edit it by hand")]
    Unsafe(String),
}

/// How an entry is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A `[mcp_servers.NAME]` table.
    Table,
    /// An inline table `{ … }`.
    Inline,
}

/// The bytes of one entry, and their shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spot {
    pub range: Range<usize>,
    pub shape: Shape,
}

/// Where the entry `path` sits in `text`.
pub fn find(text: &str, path: &EntryPath) -> Result<Spot, TomlSpliceError> {
    let doc = Document::parse(text).map_err(|e| TomlSpliceError::Parse(e.message().trim_end().to_owned()))?;
    let missing = || TomlSpliceError::NoEntry(path.name.clone());
    let unsafe_ = |why: &str| TomlSpliceError::Unsafe(format!("the entry {:?} is written {why}", path.name));
    let value = match doc.get(path.servers_key).ok_or_else(missing)? {
        Item::Table(servers) => match servers.get(&path.name).ok_or_else(missing)? {
            Item::Table(entry) => return table_spot(&doc, text, entry).map_err(&unsafe_),
            Item::Value(v) => v,
            _ => return Err(unsafe_("as an array of tables")),
        },
        Item::Value(Value::InlineTable(servers)) => servers.get(&path.name).ok_or_else(missing)?,
        _ => return Err(missing()),
    };
    match (value, value.span()) {
        (Value::InlineTable(_), Some(range)) => Ok(Spot { range, shape: Shape::Inline }),
        _ => Err(unsafe_("as something other than a table")),
    }
}

/// The range of a `[mcp_servers.NAME]` table with its sub-tables, or in what shape it is
/// written that has none.
fn table_spot(doc: &Document<&str>, text: &str, entry: &Table) -> Result<Spot, &'static str> {
    if entry.is_dotted() {
        return Err("as dotted keys (NAME.command = …)");
    }
    let header = entry.span().filter(|_| !entry.is_implicit()).ok_or("without a [mcp_servers.NAME] header of its own")?;
    let mut own = Spans::default();
    own.table(entry);
    if own.starts.iter().any(|&s| s < header.start) {
        return Err("in pieces, some before its header");
    }
    let end = line_end(text, own.ends.iter().copied().max().unwrap_or(header.end));
    let mut all = Spans::default();
    all.table(doc.as_table());
    let foreign = all.headers.iter().filter(|h| !own.headers.contains(h));
    if foreign.into_iter().any(|h| h.start > header.start && h.start < end) {
        return Err("in pieces, with another table between them");
    }
    Ok(Spot { range: header.start..end, shape: Shape::Table })
}

/// The end of the line `at` is on (before its `\n` or `\r\n`): what follows a key's value or a
/// header on its line (spaces, a comment) belongs to it.
fn line_end(text: &str, at: usize) -> usize {
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    if text[..end].ends_with('\r') { end - 1 } else { end }
}

/// The spans a table and everything under it takes in the text.
#[derive(Debug, Default)]
struct Spans {
    starts: Vec<usize>,
    ends: Vec<usize>,
    /// The header of each table with one (`[…]` and `[[…]]`).
    headers: Vec<Range<usize>>,
}

impl Spans {
    fn add(&mut self, span: Option<Range<usize>>) {
        if let Some(s) = span {
            self.starts.push(s.start);
            self.ends.push(s.end);
        }
    }

    fn table(&mut self, table: &Table) {
        // The root table's "header" is the empty span at 0.
        if let Some(h) = table.span().filter(|h| !table.is_implicit() && !h.is_empty()) {
            self.headers.push(h.clone());
            self.add(Some(h));
        }
        for (name, item) in table.iter() {
            self.add(table.key(name).and_then(|k| k.span()));
            match item {
                Item::Value(v) => self.add(v.span()),
                Item::Table(t) => self.table(t),
                Item::ArrayOfTables(a) => a.iter().for_each(|t| self.table(t)),
                Item::None => {}
            }
        }
    }
}

/// The entry that replaces the one at `before` (the text [`find`] found), in the same shape:
/// `command = "<command>"`, `args = […]` and (when there are any) `env_vars = […]` under
/// `path`, with `before`'s line endings.
pub fn render(before: &str, path: &EntryPath, command: &str, args: &[String], env_vars: &[&str]) -> String {
    let args: Array = args.iter().map(String::as_str).collect();
    let env_vars: Option<Array> = (!env_vars.is_empty()).then(|| env_vars.iter().copied().collect());
    let text = match shape(before) {
        Shape::Inline => {
            let mut entry = InlineTable::new();
            entry.insert("command", command.into());
            entry.insert("args", Value::Array(args));
            if let Some(vars) = env_vars {
                entry.insert("env_vars", Value::Array(vars));
            }
            Value::InlineTable(entry).to_string()
        }
        Shape::Table => {
            let mut entry = Table::new();
            entry.insert("command", toml_edit::value(command));
            entry.insert("args", toml_edit::value(args));
            if let Some(vars) = env_vars {
                entry.insert("env_vars", toml_edit::value(vars));
            }
            let mut servers = Table::new();
            servers.set_implicit(true);
            servers.insert(&path.name, Item::Table(entry));
            let mut doc = DocumentMut::new();
            doc.insert(path.servers_key, Item::Table(servers));
            doc.to_string().trim_end().to_owned()
        }
    };
    if before.contains("\r\n") { text.replace('\n', "\r\n") } else { text }
}

/// The shape of an entry's text (what [`find`] found, or [`render`] wrote).
pub fn shape(entry: &str) -> Shape {
    if entry.trim_start().starts_with('{') { Shape::Inline } else { Shape::Table }
}

/// Whether two entry texts hold the same value, in whichever shape each is written: Codex
/// CLI's `codex mcp add` rewrites the file, so an entry may come back re-formatted.
pub fn same_value(a: &str, b: &str) -> bool {
    matches!((entry_value(a), entry_value(b)), (Some(x), Some(y)) if x == y)
}

/// The value of one entry's text.
fn entry_value(entry: &str) -> Option<toml::Value> {
    let only = |t: toml::Table| -> Option<toml::Value> { (t.len() == 1).then(|| t.into_iter().next().map(|(_, v)| v)).flatten() };
    match shape(entry) {
        Shape::Inline => only(format!("v = {entry}").parse().ok()?),
        // `[mcp_servers.NAME]` and its keys: the one server of the one server list.
        Shape::Table => match only(entry.parse().ok()?)? {
            toml::Value::Table(servers) => only(servers),
            _ => None,
        },
    }
}

/// Why `text` is not TOML, if it is not.
pub fn check(text: &str) -> Result<(), TomlSpliceError> {
    Document::parse(text).map(drop).map_err(|e| TomlSpliceError::Parse(e.message().trim_end().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str) -> EntryPath {
        EntryPath { servers_key: "mcp_servers", project: None, name: name.to_owned() }
    }

    fn spot(text: &str, name: &str) -> (String, Shape) {
        let s = find(text, &at(name)).expect("found");
        (text[s.range].to_owned(), s.shape)
    }

    const FILE: &str = r#"# Codex settings
model = "gpt-5"

[mcp_servers.linear] # via mcp-remote
command = "npx"
# the remote one
args = ["-y", "mcp-remote", "https://mcp.linear.app/mcp"]

[mcp_servers.linear.env]
DEBUG = "1"   # loud

# Local tools
[mcp_servers.git]
command = "uvx"
args = [
  "mcp-server-git",
]
[profiles.fast]
model = "gpt-5-mini"
"#;

    #[test]
    fn a_table_with_its_sub_tables_and_nothing_after_its_last_line() {
        let (text, shape) = spot(FILE, "linear");
        assert_eq!(shape, Shape::Table);
        assert!(text.starts_with("[mcp_servers.linear] # via mcp-remote\ncommand"), "{text}");
        assert!(text.ends_with("[mcp_servers.linear.env]\nDEBUG = \"1\"   # loud"), "{text}");
        let (git, _) = spot(FILE, "git");
        assert_eq!(git, "[mcp_servers.git]\ncommand = \"uvx\"\nargs = [\n  \"mcp-server-git\",\n]");
    }

    #[test]
    fn inline_shapes() {
        let root = "mcp_servers.docs = { url = \"https://docs.example/mcp\" } # docs\nmodel = \"o3\"\n";
        assert_eq!(spot(root, "docs"), ("{ url = \"https://docs.example/mcp\" }".into(), Shape::Inline));
        let under = "[mcp_servers]\ndocs = {url = \"https://d.example\"}\n'my server' = { command = \"x\" }\n";
        assert_eq!(spot(under, "docs"), ("{url = \"https://d.example\"}".into(), Shape::Inline));
        assert_eq!(spot(under, "my server").0, "{ command = \"x\" }");
        let nested = "mcp_servers = { a = { url = \"https://a.example\" } }\n";
        assert_eq!(spot(nested, "a").0, "{ url = \"https://a.example\" }");
    }

    #[test]
    fn shapes_without_a_range_of_their_own_are_refused() {
        let dotted = "[mcp_servers]\ndocs.url = \"https://d.example\"\n";
        let headerless = "[mcp_servers.docs.env]\nA = \"1\"\n";
        let apart = "[mcp_servers.docs]\nurl = \"https://d.example\"\n[other]\nx = 1\n[mcp_servers.docs.env]\nA = \"1\"\n";
        let array = "[[mcp_servers.docs]]\nurl = \"https://d.example\"\n";
        let scalar = "mcp_servers.docs = \"https://d.example\"\n";
        for (text, why) in [(dotted, "dotted keys"), (headerless, "header of its own"), (apart, "another table between"), (array, "array of tables"), (scalar, "other than a table")] {
            let err = find(text, &at("docs")).expect_err(text);
            assert!(matches!(&err, TomlSpliceError::Unsafe(m) if m.contains(why)), "{text}: {err}");
        }
    }

    #[test]
    fn missing_entries_and_broken_files() {
        assert_eq!(find(FILE, &at("nope")), Err(TomlSpliceError::NoEntry("nope".into())));
        assert_eq!(find("model = \"o3\"\n", &at("x")), Err(TomlSpliceError::NoEntry("x".into())));
        assert!(matches!(find("[mcp_servers\n", &at("x")), Err(TomlSpliceError::Parse(_))));
        assert!(matches!(find("[a]\nx = 1\n[a]\n", &at("x")), Err(TomlSpliceError::Parse(_))), "a table defined twice");
    }

    #[test]
    fn renders_escaped_in_the_found_shape() {
        let args = ["connect".to_owned(), "https://x.example/mcp?q=\"a\\b".to_owned()];
        let table = render("[mcp_servers.x]\nurl = 1", &at("my server"), "/opt/mcp broker/bin", &args, &["A_VAR"]);
        let parsed: toml::Table = table.parse().expect("TOML");
        let entry = &parsed["mcp_servers"]["my server"];
        assert_eq!(entry["command"].as_str(), Some("/opt/mcp broker/bin"));
        assert_eq!(entry["args"][1].as_str(), Some(args[1].as_str()));
        assert!(table.starts_with("[mcp_servers.\"my server\"]\ncommand = ") && table.ends_with("\nenv_vars = [\"A_VAR\"]"), "{table}");
        let inline = render("{ url = 1 }", &at("x"), "/b", &args[..1], &["A", "B"]);
        assert_eq!(inline, "{ command = \"/b\", args = [\"connect\"], env_vars = [\"A\", \"B\"] }");
        assert_eq!(render("[mcp_servers.x]\r\nurl = 1", &at("x"), "/b", &[], &[]), "[mcp_servers.x]\r\ncommand = \"/b\"\r\nargs = []");
    }

    #[test]
    fn same_value_across_formatting_and_shapes() {
        let table = "[mcp_servers.x]\ncommand = \"/b\"\nargs = [\"connect\"]";
        assert!(same_value(table, "[mcp_servers.x]\nargs = [ 'connect' ]   # c\ncommand = \"/b\""));
        assert!(same_value(table, "{ command = \"/b\", args = [\"connect\"] }"));
        assert!(!same_value(table, "[mcp_servers.x]\ncommand = \"/c\"\nargs = [\"connect\"]"));
        assert!(!same_value(table, "not toml ["));
    }
}
