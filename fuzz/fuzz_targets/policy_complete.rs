//! The per-tool policy must hold for every `tools/list` answer a host can read: with every
//! tool disabled, no message a host parses from the rewritten body (JSON, or SSE read by a
//! WHATWG parser as an HTTP host does) may still list a tool by name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::mcp::tools::rewrite_body;
use serde_json::Value;

#[path = "../whatwg_sse.rs"]
mod whatwg_sse;

/// A `tools/list` result naming a tool, or a batch holding one.
fn lists_a_tool(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(lists_a_tool),
        _ => v.get("result").and_then(|r| r.get("tools")).and_then(Value::as_array).is_some_and(|t| t.iter().any(|x| x["name"].is_string())),
    }
}

/// MCPB_FUZZ_SKIP_KNOWN=1 skips inputs of the findings already reported (docs/SECURITY.md,
/// fuzz/regressions/policy_complete/): CR or CRLF framing of several events, a leading BOM,
/// JSON-RPC batches. The default is strict.
fn known(body: &[u8]) -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("MCPB_FUZZ_SKIP_KNOWN").is_some())
        && (body.contains(&b'\r') || body.starts_with("\u{feff}".as_bytes()) || body.trim_ascii_start().starts_with(b"[") || body.windows(7).any(|w| w == b"data: ["))
}

fuzz_target!(|input: (bool, &[u8])| {
    let (sse, body) = input;
    let (out, _) = rewrite_body(body, sse, &|_| true);
    let leaked: Vec<Value> = if sse {
        whatwg_sse::events(&out).iter().filter_map(|d| serde_json::from_str::<Value>(d).ok()).filter(lists_a_tool).collect()
    } else {
        serde_json::from_slice::<Value>(&out).ok().filter(lists_a_tool).into_iter().collect()
    };
    if known(body) {
        return;
    }
    assert!(leaked.is_empty(), "a disabled tool is still listed to the host: {leaked:?}\nbody: {:?}", String::from_utf8_lossy(body));
});
