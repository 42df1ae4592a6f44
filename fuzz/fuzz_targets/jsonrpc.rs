//! JSON-RPC inspection of a host's message (what the audit, the tool policy and the
//! 2026-07-28 request headers rely on), and the header value encoding of the bridge.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use mcp_broker::mcp::metadata::{encode_value, mcp_name, meta_protocol_version};
use mcp_broker::mcp::jsonrpc::MessageInfo;
use serde_json::Value;

fn header_round_trip(v: &str) {
    let e = encode_value(v);
    assert!(http::HeaderValue::from_str(&e).is_ok(), "{v:?} encoded to an invalid header value {e:?}");
    match e.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) if e != v => {
            let back = base64::engine::general_purpose::STANDARD.decode(b64).expect("valid base64");
            assert_eq!(back, v.as_bytes());
        }
        _ => assert_eq!(e, v),
    }
}

fuzz_target!(|data: &[u8]| {
    let info = MessageInfo::parse(data);
    let value: Result<Value, _> = serde_json::from_slice(data);
    // One message is an object; arrays (batches) and scalars are refused.
    assert_eq!(info.is_ok(), value.as_ref().is_ok_and(Value::is_object), "parse disagrees with serde_json");
    let (Ok(info), Ok(v)) = (info, value) else {
        header_round_trip(&String::from_utf8_lossy(data));
        return;
    };
    assert_eq!(info.method.as_deref(), v.get("method").and_then(Value::as_str));
    if info.method.as_deref() == Some("tools/call") {
        if let Some(name) = v["params"]["name"].as_str() {
            assert_eq!(info.tool(), Some(name), "the policy checks another tool than the one called");
        }
    } else {
        assert_eq!(info.tool(), None);
    }
    assert!(info.id.as_ref().is_none_or(|id| !id.is_null()));
    if let Some(m) = info.method.as_deref() {
        header_round_trip(m);
    }
    if let Some(n) = mcp_name(&v) {
        header_round_trip(n);
    }
    let _ = meta_protocol_version(&v);
});
