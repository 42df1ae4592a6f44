//! `tools/list` answers as a host sees them: a tool its policy disables for a host × server
//! ([`crate::consent`]) is removed (least privilege; its `tools/call` is refused too).
//!
//! A `tools/list` answer is small, so it is read whole, rewritten and sent on, whether it
//! came as JSON or as an SSE stream. Tools whose `x-mcp-header` marks are invalid are
//! dropped here too ([`crate::mcp::params`]).

use serde_json::Value;

use super::params::{self, ParamHeader};
use super::sse;
use crate::consent::ToolInfo;

/// A tool a server listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTool {
    pub name: String,
    pub description: Option<String>,
    /// Its parameters that go out as `Mcp-Param-*` headers too.
    pub param_headers: Vec<ParamHeader>,
}

impl ListedTool {
    /// The tool as the policy view shows it.
    pub fn info(&self) -> ToolInfo {
        ToolInfo { name: self.name.clone(), description: self.description.clone() }
    }
}

/// The usable tools in a `tools/list` result message, if it is one (a tool with invalid
/// `x-mcp-header` marks is left out, with a warning).
pub fn tools_of(msg: &Value) -> Option<Vec<ListedTool>> {
    let tools = msg.get("result")?.get("tools")?.as_array()?;
    Some(
        tools
            .iter()
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?.to_owned();
                let param_headers = match params::annotations(t.get("inputSchema")) {
                    Ok(h) => h,
                    Err(why) => {
                        tracing::warn!(tool = %name, "left out of tools/list: {why}");
                        return None;
                    }
                };
                let description = t.get("description").and_then(Value::as_str).map(str::to_owned);
                Some(ListedTool { name, description, param_headers })
            })
            .collect(),
    )
}

/// Remove, from a `tools/list` result message, the named tools that are disabled or not in
/// `usable` (their `x-mcp-header` marks are invalid). A tool without a name passes as it came.
pub fn filter_message(msg: &mut Value, usable: &[ListedTool], disabled: &dyn Fn(&str) -> bool) {
    let usable: std::collections::HashSet<&str> = usable.iter().map(|u| u.name.as_str()).collect();
    if let Some(tools) = msg.get_mut("result").and_then(|r| r.get_mut("tools")).and_then(Value::as_array_mut) {
        tools.retain(|t| t.get("name").and_then(Value::as_str).is_none_or(|name| usable.contains(name) && !disabled(name)));
    }
}

/// Rewrite a whole response body (JSON or SSE). Returns the new body and the tools the
/// server listed (before filtering), when a `tools/list` result was found. A batch (array)
/// answer is filtered element by element. Anything that is not JSON passes unchanged.
pub fn rewrite_body(body: &[u8], sse: bool, disabled: &dyn Fn(&str) -> bool) -> (Vec<u8>, Option<Vec<ListedTool>>) {
    let mut found = None;
    if !sse {
        let Ok(mut msg) = serde_json::from_slice::<Value>(body) else { return (body.to_vec(), None) };
        rewrite_message(&mut msg, disabled, &mut found);
        let body = if found.is_some() { serde_json::to_vec(&msg).unwrap_or_default() } else { body.to_vec() };
        return (body, found);
    }
    let mut parser = sse::Parser::default();
    let mut out = String::with_capacity(body.len());
    for mut event in parser.feed(body) {
        if let Ok(mut msg) = serde_json::from_str::<Value>(&event.data) {
            rewrite_message(&mut msg, disabled, &mut found);
            event.data = msg.to_string();
        }
        out.push_str(&event.to_wire());
    }
    // An event the server never finished is not completed here: it is dropped, as a
    // client would drop it.
    (out.into_bytes(), found)
}

fn rewrite_message(msg: &mut Value, disabled: &dyn Fn(&str) -> bool, found: &mut Option<Vec<ListedTool>>) {
    match msg {
        Value::Array(items) => items.iter_mut().for_each(|m| rewrite_message(m, disabled, found)),
        m => {
            if let Some(tools) = tools_of(m) {
                filter_message(m, &tools, disabled);
                *found = Some(tools);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","description":"e"},{"name":"delete_record"}]}}"#;

    #[test]
    fn json_and_sse_are_filtered() {
        let off = |n: &str| n == "delete_record";
        let (body, tools) = rewrite_body(LIST.as_bytes(), false, &off);
        assert_eq!(tools.unwrap().len(), 2);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
        let sse = format!("event: message\nid: 1\ndata: {LIST}\n\n");
        let (body, tools) = rewrite_body(sse.as_bytes(), true, &off);
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("event: message\nid: 1\ndata: "), "{text}");
        let crlf = format!("event: message\r\ndata: {LIST}\r\n\r\ndata: {LIST}\r\r");
        let (body, _) = rewrite_body(crlf.as_bytes(), true, &off);
        let text = String::from_utf8(body).unwrap();
        assert_eq!((text.matches("echo").count(), text.contains("delete_record")), (2, false), "{text}");
        assert!(!text.contains("delete_record") && text.contains("echo") && text.ends_with("\n\n"));
        assert_eq!(tools.unwrap()[0].description.as_deref(), Some("e"));
    }

    #[test]
    fn tools_with_invalid_header_marks_are_dropped() {
        let list = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[
            {"name":"good","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}},
            {"name":"bad","inputSchema":{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","x-mcp-header":"Tag"}}}}}]}}"#;
        let (body, tools) = rewrite_body(list.as_bytes(), false, &|_| false);
        let tools = tools.unwrap();
        assert_eq!((tools.len(), tools[0].name.as_str(), tools[0].param_headers.len()), (1, "good", 1));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn other_messages_pass_untouched() {
        let (body, tools) = rewrite_body(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, false, &|_| true);
        assert!(tools.is_none());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((v["id"].as_i64(), v["result"].as_object().map(|o| o.len())), (Some(1), Some(0)));
    }
}
