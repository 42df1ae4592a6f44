//! How the commands print: aligned tables, and the words for times and optional values.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An optional value, or `-`.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The scopes space-separated, or `-`.
pub fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() { "-".into() } else { scopes.join(" ") }
}

/// A time as the API writes it (RFC 3339).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// How soon a token expires, in words.
pub fn expiry_text(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else { return "-".into() };
    match (at - OffsetDateTime::now_utc()).whole_seconds() {
        s if s <= 0 => "expired".into(),
        s if s < 120 => format!("in {s} s"),
        s if s < 7200 => format!("in {} min", s / 60),
        s if s < 172_800 => format!("in {} h", s / 3600),
        s => format!("in {} days", s / 86_400),
    }
}

pub fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    print!("{}", table(header, rows));
}

/// The rows under the header, each column as wide as its widest cell.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
