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

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::bridge::headers::encode_value;

/// The largest integer a header may carry (JavaScript's safe range).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One marked parameter: where its value sits in the arguments, and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    path: Vec<String>,
    name: HeaderName,
}

/// The marked parameters of one tool's `inputSchema`, or why its marks are invalid.
pub fn annotations(input_schema: Option<&Value>) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    if let Some(schema) = input_schema {
        walk(schema, Some(&[]), &mut found)?;
    }
    for (i, a) in found.iter().enumerate() {
        if found[..i].iter().any(|b| b.name == a.name) {
            return Err(format!("header {} is named by two parameters", a.name));
        }
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
    let kind = schema.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("string" | "integer" | "boolean")) {
        return Err(format!("x-mcp-header {name:?} marks a parameter that is not a string, integer or boolean"));
    }
    let header = HeaderName::from_bytes(format!("mcp-param-{name}").as_bytes()).map_err(|e| format!("x-mcp-header {name:?}: {e}"))?;
    Ok(ParamHeader { path, name: header })
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
                Value::Number(n) => n.as_i64().filter(|i| i.abs() <= MAX_SAFE_INTEGER)?.to_string(),
                _ => return None,
            };
            Some((m.name.clone(), HeaderValue::from_str(&text).ok()?))
        })
        .collect()
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
        ];
        for schema in bad {
            assert!(annotations(Some(&schema)).is_err(), "{schema}");
        }
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
            "big": {"type": "integer", "x-mcp-header": "Big"}
        }});
        let marks = annotations(Some(&schema)).unwrap();
        let args = json!({"s": "us-west1", "u": "Hello, 世界", "i": -7, "b": true, "n": null, "big": 9_007_199_254_740_993_i64});
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
