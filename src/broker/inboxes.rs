//! Sign-ins waiting for their authorization response, so that an address the user pastes
//! (from a browser on another machine) reaches the one sign-in it belongs to, found by its
//! `state`. A pasted address that matches none uses nothing up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Broker, Error};
use crate::oauth::login::{Inbox, PasteError};

#[derive(Default)]
pub(crate) struct Inboxes {
    open: Mutex<Vec<(u64, Inbox)>>,
    next: AtomicU64,
}

/// An inbox listed while its sign-in waits; dropping it takes it off the list.
pub(crate) struct Listed<'a> {
    inboxes: &'a Inboxes,
    id: u64,
}

impl Inboxes {
    pub(crate) fn list(&self, inbox: Inbox) -> Listed<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, inbox));
        Listed { inboxes: self, id }
    }

    fn find(&self, state: &str) -> Option<Inbox> {
        self.lock().iter().find(|(_, inbox)| inbox.expects(state)).map(|(_, inbox)| inbox.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Inbox)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.inboxes.lock().retain(|(id, _)| *id != self.id);
    }
}

impl Broker {
    /// Hand a pasted address to the sign-in whose `state` it carries, and wait until that
    /// sign-in has redeemed the code or failed (how it ended is that sign-in's to tell).
    pub async fn paste(&self, pasted: &str) -> Result<(), Error> {
        let url = url::Url::parse(pasted.trim()).map_err(|_| PasteError::NotAnAddress)?;
        let state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
        let inbox = state.and_then(|s| self.inboxes.find(&s)).ok_or(PasteError::NotThisSignIn)?;
        inbox.deliver(pasted).await?.ok();
        Ok(())
    }
}
