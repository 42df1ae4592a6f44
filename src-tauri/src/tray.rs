//! The tray icon and its menu: the service's problems, sign-ins hosts started that wait for
//! the user, each server with its state and a Sign in / Sign out action, waiting approvals,
//! "Add server…", "Open mcp-broker", "Quit".
//! The icon has two variants: the plain one, and one with a badge when something needs the
//! user (a problem, an approval waiting, a server that needs sign-in).

use mcp_broker::service::api::Status;
use tauri::image::Image;
use tauri::menu::{Menu, MenuBuilder, MenuItemBuilder, SubmenuBuilder};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Runtime};

pub const TRAY_ID: &str = "mcp-broker";

const ICON: &[u8] = include_bytes!("../../icons/tray.png");
const ICON_ATTENTION: &[u8] = include_bytes!("../../icons/tray-attention.png");

/// What the menu shows; the menu is rebuilt only when this changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// (name, state) of each server, as the control API names the state.
    pub servers: Vec<(String, String)>,
    /// How many first-use approvals wait for the user.
    pub pending: usize,
    /// Why the service cannot be reached, if it cannot.
    pub service_error: Option<String>,
    /// What the service cannot do as configured (`problems` of its status).
    pub problems: Vec<String>,
    /// (server, host) of each sign-in a host's request started that waits for the user.
    pub signins: Vec<(String, String)>,
}

impl Model {
    pub fn from_status(status: &Status, pending: usize) -> Self {
        let servers = status.servers.iter().map(|s| (s.name.clone(), s.state.as_str().to_owned())).collect();
        // Only once there is an address to open (not while discovery still runs).
        let signins = status.signins.iter().filter(|s| s.url.is_some()).filter_map(|s| Some((s.server.clone(), s.asked_by.clone()?))).collect();
        Self { servers, pending, service_error: None, problems: status.problems.clone(), signins }
    }

    /// Whether the icon should ask for attention.
    pub fn needs_user(&self) -> bool {
        self.pending > 0
            || self.service_error.is_some()
            || !self.problems.is_empty()
            || !self.signins.is_empty()
            || self.servers.iter().any(|(_, s)| s == "needs_login")
    }
}

/// The words for a server state, as the window shows them too.
pub fn state_text(state: &str) -> &'static str {
    match state {
        "signed_in" => "signed in",
        "needs_login" => "needs sign-in",
        "signed_out" => "signed out",
        "api_key" => "API key",
        "open" => "no sign-in",
        _ => "unknown",
    }
}

/// Menu ids: `signin:NAME`, `signout:NAME`, `server:NAME`, `problem:N`, `finish:NAME` (a
/// host's sign-in waiting), and the fixed ones below.
pub mod ids {
    pub const PROBLEM: &str = "problem:";
    pub const FINISH: &str = "finish:";
    pub const APPROVALS: &str = "approvals";
    pub const ADD: &str = "add";
    pub const OPEN: &str = "open";
    pub const QUIT: &str = "quit";
}

pub fn build_menu<R: Runtime>(app: &AppHandle<R>, model: &Model) -> tauri::Result<Menu<R>> {
    let mut menu = MenuBuilder::new(app);
    if let Some(e) = &model.service_error {
        let item = MenuItemBuilder::with_id("service-error", format!("Service unavailable: {}", shorten(e, 60))).enabled(false).build(app)?;
        menu = menu.item(&item).separator();
    }
    if !model.problems.is_empty() {
        for (i, p) in model.problems.iter().enumerate() {
            // Clicking a problem opens the window, whose banner shows it whole.
            menu = menu.text(format!("{}{i}", ids::PROBLEM), format!("⚠ {}", shorten(p, 60)));
        }
        menu = menu.separator();
    }
    if !model.signins.is_empty() {
        for (server, host) in &model.signins {
            menu = menu.text(format!("{}{server}", ids::FINISH), format!("Sign in to {server} (for {host})…"));
        }
        menu = menu.separator();
    }
    if model.pending > 0 {
        let text = if model.pending == 1 { "1 approval waiting…".to_owned() } else { format!("{} approvals waiting…", model.pending) };
        menu = menu.text(ids::APPROVALS, text).separator();
    }
    if model.servers.is_empty() {
        let item = MenuItemBuilder::with_id("no-servers", "No servers yet").enabled(false).build(app)?;
        menu = menu.item(&item);
    }
    for (name, state) in &model.servers {
        let (id, action) = match state.as_str() {
            "signed_in" => (format!("signout:{name}"), "Sign out"),
            // Nothing to sign in to: the action forgets the server (and its key).
            "api_key" | "open" => (format!("signout:{name}"), "Forget"),
            _ => (format!("signin:{name}"), "Sign in…"),
        };
        let sub = SubmenuBuilder::new(app, format!("{name} — {}", state_text(state)))
            .text(id, action)
            .text(format!("server:{name}"), "Show details")
            .build()?;
        menu = menu.item(&sub);
    }
    menu.separator().text(ids::ADD, "Add server…").text(ids::OPEN, "Open mcp-broker").separator().text(ids::QUIT, "Quit").build()
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n).collect();
    out.push('…');
    out
}

pub fn icon(attention: bool) -> Image<'static> {
    Image::from_bytes(if attention { ICON_ATTENTION } else { ICON }).expect("the tray icons are valid PNGs")
}

/// Create the tray icon; menu clicks go to `on_menu`.
pub fn create<R: Runtime>(app: &AppHandle<R>, model: &Model, on_menu: impl Fn(&AppHandle<R>, &str) + Send + Sync + 'static) -> tauri::Result<TrayIcon<R>> {
    let menu = build_menu(app, model)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.needs_user()))
        .tooltip("mcp-broker")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| on_menu(app, event.id().as_ref()))
        .build(app)
}

/// Bring the tray up to date with `model`.
pub fn update<R: Runtime>(app: &AppHandle<R>, old: &Model, model: &Model) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return Ok(()) };
    if old.needs_user() != model.needs_user() {
        tray.set_icon(Some(icon(model.needs_user())))?;
    }
    tray.set_menu(Some(build_menu(app, model)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(servers: &[(&str, &str)], problems: &[&str]) -> Status {
        let servers: Vec<_> = servers
            .iter()
            .map(|(name, state)| json!({ "name": name, "url": "u", "resource": "u", "state": state, "issuer": "i", "client_id": "c" }))
            .collect();
        serde_json::from_value(json!({ "servers": servers, "endpoint": "e", "version": "v", "problems": problems })).unwrap()
    }

    #[test]
    fn attention_when_an_approval_waits_or_a_server_needs_sign_in() {
        let s = status(&[("linear", "signed_in"), ("github", "signed_out")], &[]);
        let m = Model::from_status(&s, 0);
        assert_eq!(m.servers, vec![("linear".into(), "signed_in".into()), ("github".into(), "signed_out".into())]);
        assert!(!m.needs_user(), "signed out is the user's own choice");
        assert!(Model::from_status(&s, 1).needs_user());
        assert!(Model::from_status(&status(&[("linear", "needs_login")], &[]), 0).needs_user());
        assert!(Model { service_error: Some("gone".into()), ..Model::default() }.needs_user());
    }

    #[test]
    fn the_services_problems_ask_for_attention() {
        let m = Model::from_status(&status(&[], &["consent.json is damaged"]), 0);
        assert_eq!(m.problems, ["consent.json is damaged"]);
        assert!(m.needs_user());
    }

    #[test]
    fn a_sign_in_a_host_started_asks_for_attention_one_the_user_started_does_not() {
        let mut s = status(&[("linear", "needs_login")], &[]);
        s.signins = serde_json::from_value(json!([
            { "server": "linear", "asked_by": "cursor", "started_at": "2026-01-02T03:04:05Z", "how": "paste", "url": "https://as.example/a" },
            { "server": "notion", "started_at": "2026-01-02T03:04:05Z", "how": "starting" },
            { "server": "asana", "asked_by": "zed", "started_at": "2026-01-02T03:04:05Z", "how": "starting" },
        ]))
        .unwrap();
        let m = Model::from_status(&s, 0);
        assert_eq!(m.signins, vec![("linear".to_owned(), "cursor".to_owned())], "the user's own sign-in is on their terminal; one still starting has nothing to open");
        assert!(Model { signins: m.signins.clone(), ..Model::default() }.needs_user());
    }

    #[test]
    fn both_icons_decode() {
        assert_ne!(icon(false).rgba(), icon(true).rgba());
    }
}
