//! Server-Sent Events framing (WHATWG HTML §9.2), as MCP uses it: an incremental parser
//! (lines end in CRLF, LF or CR; a leading BOM is dropped; `data:` lines are joined by
//! newlines and dispatched at a blank line; `id:` is remembered for `Last-Event-ID`;
//! comments are ignored) and the writer for one event.
//! Hand-written: ~60 lines over bytes, where a crate would bring its own stream types.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub data: String,
    pub id: Option<String>,
    /// The `event:` type, when not the default `message`.
    pub event: Option<String>,
}

impl Event {
    /// The event in wire form, ending with its blank line.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.event {
            out.push_str(&format!("event: {e}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        for line in self.data.split('\n') {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
        out
    }
}

/// Feed bytes as they arrive; take out complete events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    started: bool,
    /// The previous chunk ended in CR: an LF starting the next one belongs to it.
    after_cr: bool,
    data: Vec<String>,
    event: Option<String>,
    id: Option<String>,
    /// The last event id seen, for resuming a 2025-11-25 stream.
    pub last_id: Option<String>,
}

impl Parser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut chunk = chunk;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.buf.extend_from_slice(chunk);
        if !self.started && self.buf.len() >= 3 {
            self.started = true;
            if self.buf.starts_with("\u{feff}".as_bytes()) {
                self.buf.drain(..3);
            }
        }
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.started = true;
            let line: Vec<u8> = self.buf.drain(..pos).collect();
            let cr = self.buf.remove(0) == b'\r';
            if cr {
                match self.buf.first() {
                    Some(b'\n') => {
                        self.buf.remove(0);
                    }
                    None => self.after_cr = true,
                    _ => {}
                }
            }
            self.line(&String::from_utf8_lossy(&line), &mut events);
        }
        events
    }

    /// Bytes of an unfinished line or event still held (to pass through unchanged).
    pub fn pending(&self) -> bool {
        !self.buf.is_empty() || !self.data.is_empty()
    }

    fn line(&mut self, line: &str, events: &mut Vec<Event>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(Event { data: self.data.join("\n"), id: self.id.clone(), event: self.event.take() });
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
            "event" => self.event = Some(value.to_owned()),
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
        assert_eq!(ev[0], Event { data: "{\"a\":1}".into(), id: Some("7".into()), event: Some("message".into()) });
        assert_eq!(ev[1], Event { data: "x\ny".into(), id: Some("7".into()), event: None });
        assert_eq!(p.last_id.as_deref(), Some("7"));
        assert!(p.feed(b"id: 8\n\n").is_empty(), "an event without data is not dispatched");
    }

    #[test]
    fn cr_crlf_split_across_chunks_and_bom() {
        let mut p = Parser::default();
        let mut ev = p.feed("\u{feff}data: a\r".as_bytes());
        ev.extend(p.feed(b"\n\rdata: b\r\r"));
        let data: Vec<_> = ev.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
        assert!(!p.pending());
    }

    #[test]
    fn wire_form_round_trips() {
        let e = Event { data: "x\ny".into(), id: Some("3".into()), event: Some("message".into()) };
        let mut p = Parser::default();
        assert_eq!(p.feed(e.to_wire().as_bytes()), [e]);
    }
}
