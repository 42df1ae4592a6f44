//! An incremental Server-Sent Events parser (WHATWG HTML §9.2), enough for MCP: events
//! are `data:` lines joined by newlines, dispatched at a blank line; `id:` is remembered
//! for `Last-Event-ID`; comments (`:`) and other fields are ignored.
//! Hand-written: ~40 lines over bytes, where a crate would bring its own stream types.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub data: String,
    pub id: Option<String>,
}

/// Feed bytes as they arrive; take out complete events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    data: Vec<String>,
    id: Option<String>,
    /// The last event id seen, for resuming a 2025-11-25 stream.
    pub last_id: Option<String>,
}

impl Parser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&String::from_utf8_lossy(&line), &mut events);
        }
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<Event>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(Event { data: self.data.join("\n"), id: self.id.clone() });
                self.data.clear();
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_owned()),
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_owned());
                self.last_id = self.id.clone();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks() {
        let mut p = Parser::default();
        assert!(p.feed(b": keep-alive\n\nid: 7\nevent: message\ndata: {\"a\"").is_empty());
        let ev = p.feed(b":1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(ev, [Event { data: "{\"a\":1}".into(), id: Some("7".into()) }, Event { data: "x\ny".into(), id: Some("7".into()) }]);
        assert_eq!(p.last_id.as_deref(), Some("7"));
        assert!(p.feed(b"id: 8\n\n").is_empty(), "an event without data is not dispatched");
    }
}
