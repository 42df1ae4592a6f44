//! The app's heartbeat: every second it asks the service for pending approvals (which is
//! what tells the service a UI is there to ask the user), and every other second for the
//! servers' states. Changes go to the window as events and to the tray; a new approval
//! also brings up the window and a desktop notification with Allow once / Always / Deny.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_broker::service::api;
use mcp_broker::service::client::ClientError;
use tauri::{AppHandle, Emitter, Runtime};
use tauri_plugin_notification::{Action, ActionType, NotificationExt};

use crate::commands::{decide_on, parse_decision, Api};
use crate::tray::{self, Model};

const ACTION_TYPE: &str = "approval";

/// Notifications shown for approvals: notification id → approval id.
#[derive(Default, Clone)]
pub struct Notes(Arc<Mutex<HashMap<i32, u64>>>);

impl Notes {
    fn insert(&self, note: i32, approval: u64) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(note, approval);
    }
    fn get(&self, note: i32) -> Option<u64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&note).copied()
    }
    /// Forget the notifications whose approval is no longer pending; returns their ids.
    fn settle(&self, pending: &HashSet<u64>) -> Vec<i32> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let done: Vec<i32> = map.iter().filter(|(_, a)| !pending.contains(*a)).map(|(n, _)| *n).collect();
        for n in &done {
            map.remove(n);
        }
        done
    }
}

/// Register the notification buttons and what they do.
pub fn setup_notifications<R: Runtime>(app: &AppHandle<R>, api: Api, notes: Notes) {
    let n = app.notification();
    let _ = n.register_action_types(vec![ActionType::builder(ACTION_TYPE)
        .actions(vec![
            Action::builder("once", "Allow once").build(),
            Action::builder("always", "Always allow").build(),
            Action::builder("deny", "Deny").build(),
        ])
        .build()]);
    let handle = app.clone();
    let _ = n.on_action(move |performed| {
        let note = performed.notification().map(|n| n.id());
        let approval = note.and_then(|id| notes.get(id));
        match (parse_decision(performed.action_id()), approval) {
            (Ok(decision), Some(id)) => {
                let (api, handle) = (api.clone(), handle.clone());
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = decide_on(&api, id, decision).await {
                        tracing::warn!("answering approval {id}: {e}");
                    }
                    let _ = handle.emit("changed", "approvals");
                });
            }
            _ => crate::show_window(&handle, Some("approvals")),
        }
    });
}

/// Run the heartbeat for the life of the app.
pub fn spawn<R: Runtime>(app: AppHandle<R>, api: Api, notes: Notes, mut model: Model) {
    tauri::async_runtime::spawn(async move {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut last_approvals: Option<api::Approvals> = None;
        let mut last_status: Option<api::Status> = None;
        let mut approvals_missing = false;
        let mut next_note: i32 = 1;
        let mut tick: u64 = 0;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            tick += 1;
            let mut next = model.clone();
            next.service_error = None;

            // Approvals, every second.
            match api.control().approvals().await {
                Ok(v) => {
                    next.pending = v.pending.len();
                    let ids: HashSet<u64> = v.pending.iter().map(|p| p.id).collect();
                    let fresh: Vec<api::Approval> = v.pending.iter().filter(|p| seen.insert(p.id)).cloned().collect();
                    // Answered (here, in the window, or timed out): its notification goes.
                    let done = notes.settle(&ids);
                    if !done.is_empty() {
                        let _ = app.notification().remove_active(done);
                    }
                    if last_approvals.as_ref() != Some(&v) {
                        let _ = app.emit("approvals", &v);
                        last_approvals = Some(v);
                    }
                    if !fresh.is_empty() {
                        crate::show_window(&app, Some("approvals"));
                    }
                    for p in fresh {
                        let note = next_note;
                        next_note = next_note.wrapping_add(1);
                        notes.insert(note, p.id);
                        notify_approval(&app, note, &p);
                    }
                }
                Err(ClientError::Connection(e)) => {
                    next.service_error = Some(e.clone());
                    let supervisor = api.supervisor().clone();
                    if let Ok(Err(e)) = tauri::async_runtime::spawn_blocking(move || supervisor.revive()).await {
                        next.service_error = Some(format!("{e:#}"));
                    }
                }
                Err(e) => {
                    next.pending = 0;
                    if !approvals_missing {
                        tracing::warn!("the service does not answer approvals ({e}); first-use approvals are off");
                        approvals_missing = true;
                    }
                }
            }

            // Servers, every other second (and at once on the first tick).
            if tick % 2 == 1 || next.service_error.is_some() {
                match api.control().status().await {
                    Ok(v) => {
                        let fresh = Model::from_status(&v, next.pending);
                        for (server, host) in fresh.signins.iter().filter(|s| !model.signins.contains(s)) {
                            notify_sign_in(&app, server, host);
                        }
                        next.servers = fresh.servers;
                        next.problems = fresh.problems;
                        next.signins = fresh.signins;
                        if last_status.as_ref() != Some(&v) {
                            let _ = app.emit("status", &v);
                            last_status = Some(v);
                        }
                    }
                    Err(e) => next.service_error = Some(e.to_string()),
                }
            }
            if let Some(e) = &next.service_error {
                let _ = app.emit("service", ServiceEvent { error: Some(e) });
            } else if model.service_error.is_some() {
                let _ = app.emit("service", ServiceEvent { error: None });
            }
            if next != model {
                if let Err(e) = tray::update(&app, &model, &next) {
                    tracing::warn!("updating the tray: {e}");
                }
                model = next;
            }
        }
    });
}

/// The payload of a `service` event: why the service cannot be reached, or `null` once it can.
#[derive(serde::Serialize, Clone)]
struct ServiceEvent<'a> {
    error: Option<&'a str>,
}

/// "cursor wants you to sign in to linear": the tray menu has the entry that opens it.
fn notify_sign_in<R: Runtime>(app: &AppHandle<R>, server: &str, host: &str) {
    let body = format!("{host} wants you to sign in to {server}. Choose \"Sign in to {server}\" in the mcp-broker menu.");
    if let Err(e) = app.notification().builder().title("mcp-broker: sign-in needed").body(&body).show() {
        tracing::warn!("cannot show a notification ({e}): {body}");
    }
}

/// "Cursor wants to use linear (scopes: read write)" with Allow once / Always / Deny.
fn notify_approval<R: Runtime>(app: &AppHandle<R>, note: i32, p: &api::Approval) {
    let scopes = if p.scopes.is_empty() { "none".to_owned() } else { p.scopes.join(" ") };
    let body = format!("{} wants to use {} (scopes: {scopes})", p.host, p.server);
    let shown = app.notification().builder().id(note).title("mcp-broker: allow a new host?").body(&body).action_type_id(ACTION_TYPE).show();
    if let Err(e) = shown {
        tracing::warn!("cannot show a notification ({e}): {body}");
    }
}
