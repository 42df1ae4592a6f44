//! The stdio bridge's SSE framing over a hostile stream: the same events whatever the
//! chunking (network reads split anywhere, even inside a UTF-8 sequence or a CRLF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_broker::mcp::sse::Parser;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (stream, cuts) = input;
    let mut whole = Parser::default();
    let all_at_once = whole.feed(&stream);

    let mut parts = Parser::default();
    let mut chunked = Vec::new();
    let mut i = 0;
    for c in cuts {
        let n = (c as usize) % (stream.len() - i + 1);
        chunked.extend(parts.feed(&stream[i..i + n]));
        i += n;
    }
    chunked.extend(parts.feed(&stream[i..]));

    assert_eq!(all_at_once, chunked, "chunking changed the events");
    assert_eq!(whole.last_id, parts.last_id);
    let blank_lines = stream.split(|&b| b == b'\n').filter(|l| l.is_empty() || *l == b"\r").count();
    assert!(all_at_once.len() <= blank_lines, "more events than blank lines");
    for e in &all_at_once {
        assert!(e.id.as_deref().is_none_or(|id| !id.contains('\0')), "an id with NUL");
    }
});
