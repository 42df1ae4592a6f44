//! Just enough JSON-RPC 2.0 for the proxy: what a message is (for the audit and the
//! headers) and the errors the broker itself answers with.

use serde_json::{json, Value};

/// What the proxy needs to know of one host message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageInfo {
    pub id: Option<Value>,
    pub method: Option<String>,
    /// `params.name` (tools/call, prompts/get) or `params.uri` (resources/read).
    pub name: Option<String>,
    /// Whether the host can show the user an address to open (it declares URL-mode
    /// elicitation): `None` when this message declares no capabilities.
    pub shows_urls: Option<bool>,
}

impl MessageInfo {
    /// Inspect a POST body; `Err` when it is not JSON, or not one message: MCP removed
    /// JSON-RPC batches (2025-06-18), and a batch would slip past per-message consent.
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
        if !v.is_object() {
            return Err(ParseError::NotOneMessage);
        }
        let params = v.get("params");
        let name = params.and_then(|p| p.get("name").or_else(|| p.get("uri"))).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            id: v.get("id").filter(|id| !id.is_null()).cloned(),
            method: v.get("method").and_then(Value::as_str).map(str::to_owned),
            name,
            shows_urls: params.and_then(capabilities).map(|c| c.pointer("/elicitation/url").is_some()),
        })
    }

    /// The tool name, for `tools/call` only.
    pub fn tool(&self) -> Option<&str> {
        (self.method.as_deref() == Some("tools/call")).then_some(self.name.as_deref()).flatten()
    }
}

/// The client capabilities a message declares: `initialize`'s (2025-11-25 and before), or
/// those every request carries in `_meta` (2026-07-28).
fn capabilities(params: &Value) -> Option<&Value> {
    params.get("capabilities").or_else(|| params.get("_meta")?.get("io.modelcontextprotocol/clientCapabilities")).filter(|c| c.is_object())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("parse error: {0}")]
    Json(String),
    #[error("invalid request: send one JSON-RPC message per request (batches are not part of MCP)")]
    NotOneMessage,
}

impl ParseError {
    pub fn code(&self) -> i64 {
        match self {
            Self::Json(_) => code::PARSE_ERROR,
            Self::NotOneMessage => code::INVALID_REQUEST,
        }
    }
}

/// Error codes the broker uses (the implementation-defined server error range).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const NOT_SIGNED_IN: i64 = -32001;
    pub const UNKNOWN_SERVER: i64 = -32002;
    pub const UPSTREAM_UNAVAILABLE: i64 = -32003;
    pub const FORBIDDEN: i64 = -32004;
    /// MCP 2025-11-25 `URLElicitationRequiredError`: the user must open an address first.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
}

/// A JSON-RPC error response (with `id: null` when the request had none or was unreadable).
pub fn error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": { "code": code, "message": message } })
}

/// The same with the error's `data`.
pub fn error_with_data(id: Option<&Value>, code: i64, message: &str, data: Value) -> Value {
    let mut e = error(id, code, message);
    e["error"]["data"] = data;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspects_messages() {
        let m = MessageInfo::parse(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#).unwrap();
        assert_eq!((m.id.clone(), m.method.as_deref(), m.tool()), (Some(json!(3)), Some("tools/call"), Some("echo")));
        let r = MessageInfo::parse(br#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x"}}"#).unwrap();
        assert_eq!((r.name.as_deref(), r.tool()), (Some("file:///x"), None));
        let n = MessageInfo::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(n.id.is_none());
        assert!(matches!(MessageInfo::parse(b"{not json"), Err(ParseError::Json(_))));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#;
        assert_eq!(MessageInfo::parse(batch).unwrap_err(), ParseError::NotOneMessage);
        assert_eq!(error(None, -1, "x")["id"], Value::Null);
    }

    #[test]
    fn url_elicitation_is_read_from_initialize_or_from_meta() {
        let init = |caps: &str| MessageInfo::parse(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"capabilities":{caps}}}}}"#).as_bytes()).unwrap().shows_urls;
        assert_eq!(init(r#"{"elicitation":{"url":{}}}"#), Some(true));
        assert_eq!(init(r#"{"elicitation":{}}"#), Some(false), "an empty elicitation capability is form mode only");
        assert_eq!(init("{}"), Some(false));
        let meta = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{},"url":{}}}}}}"#;
        assert_eq!(MessageInfo::parse(meta).unwrap().shows_urls, Some(true));
        let plain = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x"}}"#;
        assert_eq!(MessageInfo::parse(plain).unwrap().shows_urls, None);
    }
}
