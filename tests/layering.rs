//! The engine's modules follow the chain a request meets (src/lib.rs): each may use the
//! foundations and the modules before it, never one after it. This test reads every source
//! file under src/ and fails on a `crate::` path that points later in the chain, so the
//! shape cannot drift without someone deciding to change the chain.

use std::path::{Path, PathBuf};

/// Used by everything; use nothing of the chain.
const FOUNDATIONS: &[&str] = &["blocking", "net", "platform", "secret"];

/// The chain, in order (src/lib.rs documents each).
const CHAIN: &[&str] = &["oauth", "vault", "broker", "hosts", "consent", "audit", "mcp", "service", "bridge"];

/// The top-level module a file under src/ belongs to (`None` for lib.rs and the binaries).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (FOUNDATIONS.contains(&name) || CHAIN.contains(&name)).then(|| name.to_owned())
}

/// Where a module stands: foundations before the whole chain.
fn rank(module: &str) -> usize {
    if FOUNDATIONS.contains(&module) {
        0
    } else {
        1 + CHAIN.iter().position(|m| *m == module).unwrap_or_else(|| panic!("{module} is in neither list"))
    }
}

/// Every top-level module a source text names as `crate::NAME` outside comments (a doc
/// link to a later module is a pointer for the reader, not a use).
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let text = code.as_str();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `mcp_broker_crate::` or similar
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_later_in_the_chain() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for used in crate_paths(&text) {
            if used == module || !(FOUNDATIONS.contains(&used.as_str()) || CHAIN.contains(&used.as_str())) {
                continue;
            }
            if rank(&used) > rank(&module) {
                wrong.push(format!("{}: {module} uses crate::{used}", file.strip_prefix(&src).unwrap_or(file).display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "modules that use one later in the chain (src/lib.rs):\n{}", wrong.join("\n"));
}

#[test]
fn every_top_level_module_is_placed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|l| l.strip_suffix(';')) {
            assert!(FOUNDATIONS.contains(&name) || CHAIN.contains(&name), "src/lib.rs declares {name}: place it in tests/layering.rs");
        }
    }
}

#[test]
fn crate_paths_are_found() {
    assert_eq!(crate_paths("use crate::vault::{Home};\nlet x = crate::mcp::sse::Parser;"), ["vault", "mcp"]);
    assert_eq!(crate_paths("mcp_broker::crate_x"), Vec::<String>::new());
    assert_eq!(crate_paths("//! see [`crate::bridge`]\nuse crate::net;"), ["net"]);
}
