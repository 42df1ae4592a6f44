//! Opening the authorization URL in the user's browser, safely, and knowing when there is
//! no browser to open ([`headless`]: an SSH session, no display).
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

/// Why no browser can be opened for the user of a program, from its environment
/// (`var` reads it): a `$BROWSER` the user set always can; an SSH session cannot (a browser
/// would open, if at all, on the remote machine); on Linux, neither can a session without
/// an X or Wayland display.
pub fn headless(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(known) = headless_if_known(&var) {
        return known;
    }
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    (cfg!(target_os = "linux") && !set("DISPLAY") && !set("WAYLAND_DISPLAY")).then(|| "no display".into())
}

/// What the environment of a program a host started can tell of where the user is: hosts
/// start their MCP servers with a trimmed environment, so a missing display variable proves
/// nothing there. `Some(None)`: `$BROWSER` is set, a browser opens; `Some(Some(why))`: an
/// SSH session; `None`: it cannot tell.
pub fn headless_if_known(var: impl Fn(&str) -> Option<String>) -> Option<Option<String>> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") {
        Some(None)
    } else if set("SSH_CONNECTION") || set("SSH_TTY") {
        Some(Some("SSH session".into()))
    } else {
        None
    }
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

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn ssh_and_no_display_are_headless_unless_browser_is_set() {
        assert_eq!(headless(env(&[("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22"), ("DISPLAY", ":0")])).as_deref(), Some("SSH session"));
        assert_eq!(headless(env(&[("SSH_TTY", "/dev/pts/1")])).as_deref(), Some("SSH session"));
        assert_eq!(headless(env(&[("BROWSER", "w3m"), ("SSH_CONNECTION", "x")])), None, "the user's $BROWSER opens URLs");
        assert_eq!(headless(env(&[("BROWSER", ""), ("SSH_CONNECTION", "x")])).as_deref(), Some("SSH session"), "an empty $BROWSER is unset");
        if cfg!(target_os = "linux") {
            assert_eq!(headless(env(&[])).as_deref(), Some("no display"));
            assert_eq!(headless(env(&[("WAYLAND_DISPLAY", "wayland-0")])), None);
            assert_eq!(headless(env(&[("DISPLAY", ":1")])), None);
        }
    }


    #[test]
    fn a_trimmed_environment_tells_only_browser_or_ssh() {
        assert_eq!(headless_if_known(env(&[("BROWSER", "firefox")])), Some(None));
        assert_eq!(headless_if_known(env(&[("SSH_CONNECTION", "a b c d")])), Some(Some("SSH session".into())));
        assert_eq!(headless_if_known(env(&[])), None, "no DISPLAY in a host's trimmed environment proves nothing");
    }

    #[test]
    fn refuses_non_http_schemes() {
        for u in ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x"] {
            assert!(matches!(open(&Url::parse(u).unwrap()), Err(BrowserError::Scheme(_))), "{u}");
        }
    }
}
