//! Opening the authorization URL in the user's browser, safely.
//!
//! Only `http(s)` URLs are opened, and never through a shell: `$BROWSER` (first entry of
//! its `:`-separated list) is executed directly with the URL as its one argument; without
//! it the `open` crate asks the desktop. The caller always prints the URL too, since a
//! headless machine has no desktop to ask.

use std::process::{Command, Stdio};

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("refusing to open {0:?}: only http and https URLs are opened")]
    Scheme(String),
    #[error("could not start the browser ({0}); open the URL above by hand")]
    Launch(String),
}

/// Refuse anything but an `http(s)` URL: it is opened, or shown for the user to open.
pub fn check_scheme(url: &Url) -> Result<(), BrowserError> {
    if matches!(url.scheme(), "http" | "https") { Ok(()) } else { Err(BrowserError::Scheme(url.scheme().to_owned())) }
}

/// Open `url`; never waits for the browser to exit.
pub fn open(url: &Url) -> Result<(), BrowserError> {
    check_scheme(url)?;
    let chosen = std::env::var("BROWSER").ok();
    match chosen.as_deref().and_then(|b| b.split(':').find(|s| !s.trim().is_empty())) {
        Some(program) => spawn(program.trim(), url.as_str()),
        None => open::that_detached(url.as_str()).map_err(|e| BrowserError::Launch(e.to_string())),
    }
}

fn spawn(program: &str, url: &str) -> Result<(), BrowserError> {
    let mut child = Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BrowserError::Launch(format!("{program}: {e}")))?;
    // Reap it whenever it exits, so a long-lived service leaves no zombies.
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_http_schemes() {
        for u in ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x"] {
            assert!(matches!(open(&Url::parse(u).unwrap()), Err(BrowserError::Scheme(_))), "{u}");
        }
    }
}
