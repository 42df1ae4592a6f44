//! Servers named but not signed in yet (`connect URL` gives a name before any sign-in), and
//! the sign-in request a host's first call starts for a server.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Broker, Error, LoginRequest};
use crate::vault::ServerState;

/// Sign-in requests by server name, for servers that have no record yet.
#[derive(Default)]
pub(crate) struct Pending(Mutex<HashMap<String, LoginRequest>>);

impl Pending {
    pub(crate) fn forget(&self, name: &str) {
        self.map().remove(name);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoginRequest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Broker {
    /// Remember how to sign in to a server known only by URL so far.
    pub fn add_pending(&self, name: &str, req: LoginRequest) {
        self.pending.map().insert(name.to_owned(), req);
    }

    /// How a host's call may sign `name` in: a pending request, or the server's own URL.
    /// Signing out is the user's word: no host may undo it by asking.
    pub fn sign_in_request(&self, name: &str) -> Result<LoginRequest, Error> {
        let pending = self.pending.map().get(name).cloned();
        match (pending, self.server(name)) {
            (_, Ok(record)) if record.state == ServerState::SignedOut => Err(Error::SignedOut(name.to_owned())),
            (Some(req), _) => Ok(req),
            (None, Ok(record)) => Ok(LoginRequest { url: record.url, name: Some(name.to_owned()), ..Default::default() }),
            (None, Err(e)) => Err(e),
        }
    }
}
