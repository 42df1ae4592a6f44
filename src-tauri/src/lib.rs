//! The mcp-broker tray app.
//!
//! It runs the broker service in this process when none answers on the control socket,
//! otherwise it attaches to the one that does ([`service`]). The window (ui/) and the tray
//! ([`tray`]) are clients of the control API like the CLI: every command ([`commands`])
//! is a call on it, so the app has no second path to the tokens. The "Detected apps" list
//! ([`apps`]) edits the user's host config files, which hold no token, as the CLI does.
//!
//! `mcp-broker-app` opens the window; `mcp-broker-app --hidden` (autostart) stays in the
//! tray. Closing the window keeps the broker running in the tray; Quit stops it.

pub mod apps;
pub mod cli_path;
pub mod commands;
pub mod service;
pub mod tray;
mod watch;

use tauri::{AppHandle, Emitter, Manager, RunEvent, Runtime, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tauri_plugin_notification::NotificationExt;

pub use apps::Apps;
pub use commands::Api;
use service::Supervisor;

/// The label of the one window.
pub const WINDOW: &str = "main";

/// The views the window has; `add` is the Servers view with the add form open.
const VIEWS: &[&str] = &["servers", "add", "hosts", "approvals", "policy", "activity"];

/// Register the app's commands on a builder (the real runtime, or the mock one in tests).
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::app_info,
        commands::status,
        commands::open_sign_in,
        commands::login,
        commands::refresh,
        commands::logout,
        commands::remove_server,
        commands::hosts,
        commands::add_host,
        commands::remove_host,
        commands::approvals,
        commands::decide,
        commands::revoke_decision,
        commands::policy,
        commands::set_policy,
        commands::audit,
        commands::detected_apps,
        commands::preview_connect,
        commands::connect_app,
        commands::disconnect_app,
    ])
}

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: mcp-broker-app [--hidden]\n\n  --hidden   start in the tray only (for autostart)\n\nMCP_BROKER_HOME=<dir> keeps everything under <dir>; MCP_BROKER_LOG sets the log level.");
        return;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("mcp-broker-app {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let hidden = args.iter().any(|a| a == "--hidden");
    init_logging();

    let supervisor = match mcp_broker::vault::Home::from_env().map_err(anyhow::Error::from).and_then(Supervisor::start_or_attach) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcp-broker-app: {e:#}");
            std::process::exit(1);
        }
    };
    let api = Api::new(supervisor.clone());
    let apps = Apps::from_env(supervisor.home());

    let app = with_commands(tauri::Builder::default())
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            // Started again (from the app menu): show the window of the running app.
            if !args.iter().any(|a| a == "--hidden") {
                show_window(app, None);
            }
        }))
        .plugin(tauri_plugin_notification::init())
        .manage(api.clone())
        .manage(apps)
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                // Closing the window keeps the broker running in the tray.
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            let notes = watch::Notes::default();
            watch::setup_notifications(&handle, api.clone(), notes.clone());
            let model = tray::Model::default();
            let menu_api = api.clone();
            tray::create(&handle, &model, move |app, id| on_menu(app, &menu_api, id))?;
            watch::spawn(handle.clone(), api.clone(), notes, model);
            let on_stop = handle.clone();
            supervisor.on_stop(move || on_stop.exit(0));
            if !hidden {
                show_window(&handle, None);
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("mcp-broker-app: cannot start: {e}");
            std::process::exit(1);
        });
    app.run(|_app, event| {
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            // No window left is no reason to stop: the tray keeps the broker.
            api.prevent_exit();
        }
    });
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCP_BROKER_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Show (or open) the window, on `view` if given.
pub fn show_window<R: Runtime>(app: &AppHandle<R>, view: Option<&str>) {
    let view = view.filter(|v| VIEWS.contains(v));
    if let Some(w) = app.get_webview_window(WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        if let Some(view) = view {
            let _ = w.emit("navigate", view);
        }
        return;
    }
    let url = match view {
        Some(v) => format!("index.html#{v}"),
        None => "index.html".to_owned(),
    };
    let built = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App(url.into()))
        .title("mcp-broker")
        .inner_size(960.0, 660.0)
        .min_inner_size(560.0, 420.0)
        .zoom_hotkeys_enabled(true)
        .build();
    if let Err(e) = built {
        tracing::error!("cannot open the window: {e}");
    }
}

/// What a tray menu item does.
fn on_menu<R: Runtime>(app: &AppHandle<R>, api: &Api, id: &str) {
    match id {
        tray::ids::APPROVALS => show_window(app, Some("approvals")),
        tray::ids::ADD => show_window(app, Some("add")),
        tray::ids::OPEN => show_window(app, None),
        tray::ids::QUIT => {
            let (app, api) = (app.clone(), api.clone());
            tauri::async_runtime::spawn(async move {
                api.supervisor().stop().await;
                app.exit(0);
            });
        }
        _ => {
            if let Some(name) = id.strip_prefix(tray::ids::FINISH) {
                finish_sign_in(app, api, name.to_owned());
            } else if let Some(name) = id.strip_prefix("signin:") {
                sign_in(app, api, name.to_owned());
            } else if let Some(name) = id.strip_prefix("signout:") {
                sign_out(app, api, name.to_owned());
            } else if id.starts_with("server:") || id.starts_with(tray::ids::PROBLEM) {
                show_window(app, Some("servers"));
            }
        }
    }
}

/// Sign in to a known server from the tray: the browser opens; if it cannot, the window
/// shows the link.
fn sign_in<R: Runtime>(app: &AppHandle<R>, api: &Api, name: String) {
    let (app, api) = (app.clone(), api.clone());
    tauri::async_runtime::spawn(async move {
        let result = async {
            let server = api.control().server(&name).await.map_err(commands::ui)?;
            let url = server.map(|s| s.url).ok_or_else(|| format!("{name} is no longer configured"))?;
            let req = mcp_broker::service::api::Login { url: url.clone(), name: Some(name.clone()), ..Default::default() };
            let progress_app = app.clone();
            api.control()
                .login(&req, move |event| {
                    let _ = progress_app.emit("login-progress", commands::LoginProgress { url: &url, event });
                    if matches!(event, mcp_broker::service::api::LoginEvent::BrowserFailed { .. }) {
                        show_window(&progress_app, Some("servers"));
                    }
                })
                .await
                .map_err(commands::ui)
        }
        .await;
        let _ = app.emit("changed", "servers");
        if let Err(e) = result {
            notify(&app, &format!("Sign-in to {name} failed"), &e);
        }
    });
}

/// Open the address of a sign-in a host started ([`commands::open_sign_in_of`]).
fn finish_sign_in<R: Runtime>(app: &AppHandle<R>, api: &Api, name: String) {
    let (app, api) = (app.clone(), api.clone());
    tauri::async_runtime::spawn(async move {
        if let Err(e) = commands::open_sign_in_of(api.control(), &name).await {
            notify(&app, &format!("Sign-in to {name}"), &e);
        }
    });
}

fn sign_out<R: Runtime>(app: &AppHandle<R>, api: &Api, name: String) {
    let (app, api) = (app.clone(), api.clone());
    tauri::async_runtime::spawn(async move {
        match api.control().logout(&name, false).await {
            Ok(out) if !out.revoked => notify(&app, &format!("Signed out of {name}"), "The tokens were forgotten, but the authorization server did not confirm revoking them."),
            Ok(_) => {}
            Err(e) => notify(&app, &format!("Sign-out of {name} failed"), &commands::ui(e)),
        }
        let _ = app.emit("changed", "servers");
    });
}

fn notify<R: Runtime>(app: &AppHandle<R>, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!("cannot show a notification ({e}): {title}: {body}");
    }
}
