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
}

impl MessageInfo {
    /// Inspect a POST body; `Err` when it is not JSON at all.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let params = v.get("params");
        let name = params.and_then(|p| p.get("name").or_else(|| p.get("uri"))).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            id: v.get("id").filter(|id| !id.is_null()).cloned(),
            method: v.get("method").and_then(Value::as_str).map(str::to_owned),
            name,
        })
    }

    /// The tool name, for `tools/call` only.
    pub fn tool(&self) -> Option<&str> {
        (self.method.as_deref() == Some("tools/call")).then_some(self.name.as_deref()).flatten()
    }
}

/// Error codes the broker uses (the implementation-defined server error range).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const NOT_SIGNED_IN: i64 = -32001;
    pub const UNKNOWN_SERVER: i64 = -32002;
    pub const UPSTREAM_UNAVAILABLE: i64 = -32003;
    pub const FORBIDDEN: i64 = -32004;
}

/// A JSON-RPC error response (with `id: null` when the request had none or was unreadable).
pub fn error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": { "code": code, "message": message } })
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
        assert!(MessageInfo::parse(b"{not json").is_err());
        assert_eq!(error(None, -1, "x")["id"], Value::Null);
    }
}
