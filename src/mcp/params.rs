//! Request headers from tool parameters (MCP 2026-07-28, Streamable HTTP, "Custom Headers
//! from Tool Parameters"). A server may mark a parameter in a tool's `inputSchema` with
//! `"x-mcp-header": "Region"`; every HTTP client must then send that parameter's value as
//! `Mcp-Param-Region` on the tool's calls, and the server rejects a call whose headers and
//! body disagree (`400`, `-32020 HeaderMismatch`).
//!
//! The proxy is the HTTP client for the hosts behind it (a stdio host cannot send headers):
//!
//! 1. On `tools/list`, [`annotations`] reads each tool's marks. A tool whose marks break the
//!    rules (empty or not a header token, used twice, on a non-primitive parameter, or not
//!    reachable from the root through `properties` alone) is dropped from the list, as the
//!    spec requires of clients, so that one bad tool leaves the others usable.
//! 2. On `tools/call`, [`headers`] gives `Mcp-Param-*` from the call's arguments: strings
//!    encoded like `Mcp-Name` (plain visible ASCII, else base64 in `=?base64?…?=`),
//!    integers in decimal, booleans as `true`/`false`; a missing or `null` value, no header.
//! 3. The marks are learned from `tools/list` answers, so a call can go out before they are
//!    known (the service restarted since its host listed the tools). When the server then
//!    answers `-32020`, the proxy lists the tools itself ([`tools_list_request`],
//!    [`result_message`]) and sends the call once more, which is what the spec asks of a
//!    client that meets a `HeaderMismatch`.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::mcp::metadata::encode_value;

/// The largest integer a header may carry (JavaScript's safe range).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The most marks one tool may have (each becomes a header on every call).
const MAX_MARKS: usize = 64;

/// One marked parameter: where its value sits in the arguments, and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    path: Vec<String>,
    name: HeaderName,
}

impl ParamHeader {
    /// The header, `mcp-param-<mark>`.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

/// The marked parameters of one tool's `inputSchema`, or why its marks are invalid.
pub fn annotations(input_schema: Option<&Value>) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    if let Some(schema) = input_schema {
        walk(schema, Some(&[]), &mut found)?;
    }
    let mut seen = std::collections::HashSet::with_capacity(found.len());
    if let Some(twice) = found.iter().find(|a| !seen.insert(&a.name)) {
        return Err(format!("header {} is named by two parameters", twice.name));
    }
    Ok(found)
}

/// Visit a schema; `path` is the chain of `properties` keys that reaches it from the root,
/// or `None` once the chain passed through anything else.
fn walk(node: &Value, path: Option<&[String]>, found: &mut Vec<ParamHeader>) -> Result<(), String> {
    match node {
        Value::Array(items) => items.iter().try_for_each(|v| walk(v, None, found)),
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("x-mcp-header", _) if found.len() >= MAX_MARKS => return Err(format!("more than {MAX_MARKS} x-mcp-header marks")),
                    ("x-mcp-header", _) => found.push(annotation(map, value, path)?),
                    ("properties", Value::Object(props)) => {
                        for (prop, schema) in props {
                            let sub = path.map(|p| [p, std::slice::from_ref(prop)].concat());
                            walk(schema, sub.as_deref(), found)?;
                        }
                    }
                    ("enum" | "const" | "default" | "examples", _) => {} // values, not schemas
                    _ => walk(value, None, found)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Check one mark against the spec's constraints.
fn annotation(schema: &Map<String, Value>, mark: &Value, path: Option<&[String]>) -> Result<ParamHeader, String> {
    let name = mark.as_str().unwrap_or_default();
    let path = match path {
        Some(p) if !p.is_empty() => p.to_vec(),
        _ => return Err(format!("x-mcp-header {name:?} is not on a property reached through `properties` alone")),
    };
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("x-mcp-header {mark} is not an HTTP header name"));
    }
    if !is_primitive(schema.get("type")) {
        return Err(format!("x-mcp-header {name:?} marks a parameter that is not a string, integer or boolean"));
    }
    let header = HeaderName::from_bytes(format!("mcp-param-{name}").as_bytes()).map_err(|e| format!("x-mcp-header {name:?}: {e}"))?;
    Ok(ParamHeader { path, name: header })
}

/// A string, integer or boolean type, or one of them made nullable (`["string", "null"]`:
/// a `null` value then simply sends no header).
fn is_primitive(kind: Option<&Value>) -> bool {
    let primitive = |t: &str| matches!(t, "string" | "integer" | "boolean");
    match kind {
        Some(Value::String(t)) => primitive(t),
        Some(Value::Array(ts)) => {
            let mut named = ts.iter().filter(|t| t.as_str() != Some("null"));
            matches!((named.next().and_then(Value::as_str), named.next()), (Some(t), None) if primitive(t))
        }
        _ => false,
    }
}

/// RFC 9110 `tchar`: the characters of a header field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The `Mcp-Param-*` headers of one call, from its `arguments`.
pub fn headers(marks: &[ParamHeader], arguments: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
    marks
        .iter()
        .filter_map(|m| {
            let value = m.path.iter().try_fold(arguments?, |v, key| v.get(key))?;
            let text = match value {
                Value::String(s) => encode_value(s),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER)?.to_string(),
                _ => return None,
            };
            Some((m.name.clone(), HeaderValue::from_str(&text).ok()?))
        })
        .collect()
}

/// The JSON-RPC error code of a request whose headers and body disagree.
pub const HEADER_MISMATCH: i64 = -32020;

/// Whether an error answer (JSON or SSE) is a `HeaderMismatch`.
pub fn is_header_mismatch(body: &[u8], sse: bool) -> bool {
    messages(body, sse).iter().any(|m| m.pointer("/error/code").and_then(Value::as_i64) == Some(HEADER_MISMATCH))
}

/// A `tools/list` request of the broker's own (one page, from `cursor`), carrying the
/// protocol `_meta` entries of the host's request it is made for: a 2026-07-28 server needs
/// the protocol version and client information in every request.
pub fn tools_list_request(host_body: &[u8], cursor: Option<&str>) -> Vec<u8> {
    let host: Value = serde_json::from_slice(host_body).unwrap_or_default();
    let mut params = Map::new();
    if let Some(meta) = host.pointer("/params/_meta").and_then(Value::as_object) {
        let protocol: Map<String, Value> = meta.iter().filter(|(k, _)| k.starts_with("io.modelcontextprotocol/")).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !protocol.is_empty() {
            params.insert("_meta".into(), Value::Object(protocol));
        }
    }
    if let Some(c) = cursor {
        params.insert("cursor".into(), Value::String(c.to_owned()));
    }
    let msg = serde_json::json!({ "jsonrpc": "2.0", "id": "mcp-broker-tools-list", "method": "tools/list", "params": params });
    serde_json::to_vec(&msg).unwrap_or_default()
}

/// The headers of the broker's own `tools/list`: the host request's, less what names its call.
pub fn list_headers(host: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(host.len());
    for (name, value) in host {
        let n = name.as_str();
        if !(n == "mcp-method" || n == "mcp-name" || n.starts_with("mcp-param-")) {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert("mcp-method", HeaderValue::from_static("tools/list"));
    out
}

/// The first result message in an answer (JSON or SSE).
pub fn result_message(body: &[u8], sse: bool) -> Option<Value> {
    messages(body, sse).into_iter().find(|m| m.get("result").is_some())
}

fn messages(body: &[u8], sse: bool) -> Vec<Value> {
    if !sse {
        return serde_json::from_slice(body).into_iter().collect();
    }
    let mut parser = crate::mcp::sse::Parser::default();
    parser.feed(body).iter().filter_map(|e| serde_json::from_str(&e.data).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(schema: Value) -> Result<Vec<String>, String> {
        annotations(Some(&schema)).map(|v| v.iter().map(|a| format!("{}@{}", a.name, a.path.join("."))).collect())
    }

    #[test]
    fn marks_reached_through_properties_are_read() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}}},
            "tags": {"type": "array", "items": {"type": "string"}, "default": [{"x-mcp-header": "data, not a mark"}]}
        }});
        assert_eq!(names(schema).unwrap(), ["mcp-param-dry-run@opts.dry", "mcp-param-region@region"]);
        assert_eq!(names(json!({"type": "object"})).unwrap(), Vec::<String>::new());
        assert!(annotations(None).unwrap().is_empty());
    }

    #[test]
    fn invalid_marks_reject_the_tool() {
        let bad = [
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "X\r\nInjected: 1"}}}),
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "Ratio"}}}),
            json!({"properties": {"a": {"type": "object", "x-mcp-header": "Obj"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Same"}, "b": {"type": "string", "x-mcp-header": "same"}}}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}}}}),
            json!({"properties": {"a": {"oneOf": [{"type": "string", "x-mcp-header": "One"}]}}}),
            json!({"type": "string", "x-mcp-header": "Root"}),
            json!({"properties": {"a": {"type": ["string", "integer"], "x-mcp-header": "Either"}}}),
            json!({"properties": {"a": {"x-mcp-header": "Untyped"}}}),
        ];
        for schema in bad {
            assert!(annotations(Some(&schema)).is_err(), "{schema}");
        }
    }

    #[test]
    fn the_brokers_own_tools_list() {
        let call = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{},
            "_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let req: Value = serde_json::from_slice(&tools_list_request(call, Some("p2"))).unwrap();
        assert_eq!(req["method"], "tools/list");
        assert_eq!(req["params"], json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}, "cursor": "p2"}));
        let bare: Value = serde_json::from_slice(&tools_list_request(b"{}", None)).unwrap();
        assert_eq!(bare["params"], json!({}));
        let err = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"Header mismatch"}}"#;
        assert!(is_header_mismatch(err, false));
        assert!(is_header_mismatch(format!("event: message\ndata: {}\n\n", std::str::from_utf8(err).unwrap()).as_bytes(), true));
        assert!(!is_header_mismatch(br#"{"error":{"code":-32600}}"#, false));
        let page = br#"{"jsonrpc":"2.0","id":"mcp-broker-tools-list","result":{"tools":[],"nextCursor":"p3"}}"#;
        assert_eq!(result_message(page, false).unwrap()["result"]["nextCursor"], "p3");
    }

    #[test]
    fn values_become_headers() {
        let schema = json!({"properties": {
            "s": {"type": "string", "x-mcp-header": "S"},
            "u": {"type": "string", "x-mcp-header": "U"},
            "i": {"type": "integer", "x-mcp-header": "I"},
            "b": {"type": "boolean", "x-mcp-header": "B"},
            "n": {"type": "string", "x-mcp-header": "N"},
            "missing": {"type": "string", "x-mcp-header": "Missing"},
            "big": {"type": "integer", "x-mcp-header": "Big"},
            "min": {"type": "integer", "x-mcp-header": "Min"},
            "opt": {"type": ["string", "null"], "x-mcp-header": "Opt"}
        }});
        let marks = annotations(Some(&schema)).unwrap();
        let args = json!({"s": "us-west1", "u": "Hello, 世界", "i": -7, "b": true, "n": null, "big": 9_007_199_254_740_993_i64, "min": i64::MIN, "opt": null});
        let got: Vec<(String, String)> = headers(&marks, Some(&args)).into_iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect();
        let want = [("mcp-param-s", "us-west1"), ("mcp-param-u", "=?base64?SGVsbG8sIOS4lueVjA==?="), ("mcp-param-i", "-7"), ("mcp-param-b", "true")];
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted);
        assert!(headers(&marks, None).is_empty());
    }
}
