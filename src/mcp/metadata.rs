//! The request metadata headers the bridge adds for the host (MCP 2026-07-28 Streamable
//! HTTP "Request Metadata"): `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, with the
//! `=?base64?…?=` sentinel for values that are not plain header-safe ASCII.

use base64::Engine;
use serde_json::Value;

/// The protocol version a 2026-07-28 request carries in `params._meta`.
pub fn meta_protocol_version(msg: &Value) -> Option<&str> {
    msg.get("params")?.get("_meta")?.get("io.modelcontextprotocol/protocolVersion")?.as_str()
}

/// `Mcp-Name` source: `params.name` or `params.uri`, for the methods that require it.
pub fn mcp_name(msg: &Value) -> Option<&str> {
    let method = msg.get("method")?.as_str()?;
    let params = msg.get("params")?;
    match method {
        "tools/call" | "prompts/get" => params.get("name")?.as_str(),
        "resources/read" => params.get("uri")?.as_str(),
        _ => None,
    }
}

/// Encode a header value per "Value Encoding": as-is when it is visible ASCII or inner
/// spaces/tabs and does not look like the sentinel, else base64 in the sentinel.
pub fn encode_value(v: &str) -> String {
    let visible = v.bytes().all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b));
    let padded = v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']);
    let sentinel_like = v.starts_with("=?base64?") && v.ends_with("?=");
    if visible && !padded && !sentinel_like {
        v.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_encoding_examples_from_the_spec() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode_value("=?base64?literal?="), "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=");
    }

    #[test]
    fn names_and_versions() {
        let call = json!({"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
        assert_eq!((mcp_name(&call), meta_protocol_version(&call)), (Some("echo"), Some("2026-07-28")));
        let read = json!({"method":"resources/read","params":{"uri":"file:///a"}});
        assert_eq!(mcp_name(&read), Some("file:///a"));
        assert_eq!(mcp_name(&json!({"method":"tools/list","params":{"name":"x"}})), None);
    }
}
