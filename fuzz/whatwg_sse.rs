//! A reference Server-Sent Events parser, straight from the WHATWG HTML standard
//! (§9.2.6 "Interpreting an event stream"): lines end in CRLF, LF or CR; a leading BOM is
//! dropped; `data` lines are joined with LF; a blank line dispatches. This is how an HTTP
//! host reads the stream the broker passes on; the fuzz targets compare against it.

/// The data of every dispatched event, in order.
pub fn events(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    let mut data = String::new();
    let mut has_data = false;
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if has_data {
                out.push(data.strip_suffix('\n').unwrap_or(&data).to_owned());
            }
            data.clear();
            has_data = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if field == "data" {
            data.push_str(value);
            data.push('\n');
            has_data = true;
        }
    }
    out
}
