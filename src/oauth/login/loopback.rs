//! The loopback redirect listener (RFC 8252 §7.3): `http://127.0.0.1:<ephemeral>/callback`.
//!
//! It serves exactly one authorization response: the first request to `/callback` is
//! checked ([`super::callback::check`]), the browser gets a page saying what happened, and
//! the listener closes. Any other path is a 404 and changes nothing. So is a callback from
//! another user's process ([`crate::platform::peer`]): `state` sits in the browser's command line, which
//! every user can read, and with it another user could race the browser and sign this user
//! in to an account of theirs (login CSRF).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use oauth2::AuthorizationCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::callback::{check, CallbackError, Expected};
use crate::platform::peer;

/// Why waiting for the browser ended without a code.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error("the sign-in was not completed within {0} s; run the command again to retry (if the authorization server showed an error about the redirect URI, it accepts only the one registered for its client: sign in with --callback-port PORT)")]
    Timeout(u64),
    #[error("the loopback listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound callback listener, ready before the browser opens.
pub struct Loopback {
    listener: TcpListener,
    port: u16,
    slot: Slot,
    /// The redirect URI registered for the client when it is not this listener (its
    /// response then comes only as a pasted address).
    registered: Option<url::Url>,
}

/// What the callback handler hands over: the checked result, and where to send the final
/// outcome (the code redeemed or not) so the browser page tells the truth.
type Handoff = (Result<AuthorizationCode, CallbackError>, oneshot::Sender<Result<(), String>>);
type Slot = Arc<Mutex<Option<(Expected, oneshot::Sender<Handoff>)>>>;

/// What the callback handler needs: the one slot, and our address (to find the peer's owner).
#[derive(Clone)]
struct Listening {
    slot: Slot,
    local: SocketAddr,
}

/// A received authorization code whose browser tab is still waiting for the outcome.
pub struct Received {
    pub code: AuthorizationCode,
    finish: Option<oneshot::Sender<Result<(), String>>>,
    shutdown: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl Received {
    /// Tell the browser how the sign-in ended, then close the listener.
    pub async fn finish(mut self, outcome: Result<(), String>) {
        if let Some(tx) = self.finish.take() {
            let _ = tx.send(outcome);
        }
        if let Some((stop, server)) = self.shutdown.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
    }
}

impl Loopback {
    /// Listen on 127.0.0.1, on `port` when the server's settings fix one (else any).
    /// `registered`: a redirect URI elsewhere that the authorization response goes to.
    pub async fn bind(port: Option<u16>, registered: Option<url::Url>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).await?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port, slot: Slot::default(), registered })
    }

    /// Where the address the user pastes goes ([`Inbox::deliver`]), as an alternative to
    /// the browser's redirect: whichever arrives first is the one authorization response.
    pub fn inbox(&self) -> Inbox {
        Inbox { slot: self.slot.clone(), redirect: self.redirect_uri() }
    }

    pub fn redirect_uri(&self) -> String {
        match &self.registered {
            Some(u) => u.to_string(),
            None => format!("http://127.0.0.1:{}/callback", self.port),
        }
    }

    /// Serve until one callback arrives or `timeout` passes. A checked code comes back as
    /// [`Received`], whose [`Received::finish`] completes the browser's page.
    pub async fn wait(self, expected: Expected, timeout: Duration) -> Result<Received, WaitError> {
        let (tx, rx) = oneshot::channel();
        let slot = self.slot.clone();
        *lock(&slot) = Some((expected, tx));
        let local = self.listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = Router::new().route("/callback", get(callback)).with_state(Listening { slot, local });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(self.listener, app).with_graceful_shutdown(async { stop_rx.await.ok(); }).await
        });
        let outcome = tokio::time::timeout(timeout, rx).await;
        lock(&self.slot).take(); // a paste after the end finds the sign-in finished
        let mut received = Received { code: AuthorizationCode::new(String::new()), finish: None, shutdown: Some((stop_tx, server)) };
        match outcome {
            Ok(Ok((Ok(code), finish))) => {
                received.code = code;
                received.finish = Some(finish);
                Ok(received)
            }
            Ok(Ok((Err(e), finish))) => {
                received.finish = Some(finish);
                received.finish(Err(e.to_string())).await;
                Err(e.into())
            }
            Ok(Err(_)) => {
                received.finish(Err("cancelled".into())).await;
                Err(WaitError::Io(std::io::Error::other("callback channel closed")))
            }
            Err(_) => {
                received.finish(Err("timed out".into())).await;
                Err(WaitError::Timeout(timeout.as_secs()))
            }
        }
    }
}

/// How long the browser's page waits for the code to be redeemed.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

async fn callback(
    State(at): State<Listening>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Query(params): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let owner = peer::owner(at.local, from);
    if !owner.admitted() {
        tracing::warn!("refused a sign-in callback from another user's process ({owner:?}) at {from}");
        return page(StatusCode::FORBIDDEN, "Not your sign-in", "This sign-in belongs to another user of this computer.");
    }
    let Some((expected, tx)) = lock(&at.slot).take() else {
        return page(StatusCode::GONE, "This sign-in is already finished", "You can close this tab.");
    };
    let (finish_tx, finish_rx) = oneshot::channel();
    let _ = tx.send((check(&params, &expected), finish_tx));
    match tokio::time::timeout(FINISH_TIMEOUT, finish_rx).await {
        Ok(Ok(Ok(()))) => page(StatusCode::OK, "Signed in", "mcp-broker is signed in. You can close this tab."),
        Ok(Ok(Err(e))) => page(StatusCode::BAD_REQUEST, "Sign-in failed", &e),
        _ => page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "mcp-broker stopped before finishing; run the sign-in again."),
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<(Expected, oneshot::Sender<Handoff>)>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The other way in for the authorization response: the address the browser ended on,
/// pasted by the user (from a browser on another machine, where the loopback redirect
/// cannot load). It gets exactly the checks a callback gets, and the same one chance.
#[derive(Clone)]
pub struct Inbox {
    slot: Slot,
    /// The redirect URI the authorization response goes to.
    redirect: String,
}

/// Why a pasted address was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasteError {
    #[error("that is not a web address")]
    NotAnAddress,
    /// Not the redirect back to this sign-in's loopback address (the sign-in address itself,
    /// say, which carries the same `state`). Nothing is used up.
    #[error("that is not the address the browser ended on after signing in ({0}?…)")]
    NotTheCallback(String),
    /// Its `state` is not this sign-in's: from another sign-in, or altered. Nothing is used
    /// up; the right address may still come.
    #[error("that address is not from this sign-in (its state parameter does not match)")]
    NotThisSignIn,
    #[error("this sign-in has already received its answer")]
    Finished,
}

impl Inbox {
    /// Whether `state` is the one this sign-in waits for (so the address is for it).
    pub fn expects(&self, state: &str) -> bool {
        lock(&self.slot).as_ref().is_some_and(|(expected, _)| expected.state == state)
    }

    /// Take `pasted` as the authorization response if its `state` is this sign-in's; then
    /// wait for how the sign-in ended (`Err` text: the code was refused, or not redeemed).
    pub async fn deliver(&self, pasted: &str) -> Result<Result<(), String>, PasteError> {
        let url = url::Url::parse(pasted.trim()).map_err(|_| PasteError::NotAnAddress)?;
        let redirect = url::Url::parse(&self.redirect).map_err(|_| PasteError::NotAnAddress)?;
        let ours = url.origin() == redirect.origin() && url.path() == redirect.path();
        if !ours {
            return Err(PasteError::NotTheCallback(self.redirect.clone()));
        }
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let taken = {
            let mut slot = lock(&self.slot);
            match slot.as_ref() {
                None => return Err(PasteError::Finished),
                Some((expected, _)) if params.get("state") != Some(&expected.state) => return Err(PasteError::NotThisSignIn),
                Some(_) => slot.take(),
            }
        };
        let Some((expected, tx)) = taken else { return Err(PasteError::Finished) };
        let (finish_tx, finish_rx) = oneshot::channel();
        let _ = tx.send((check(&params, &expected), finish_tx));
        match tokio::time::timeout(FINISH_TIMEOUT, finish_rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => Ok(Err("mcp-broker stopped before finishing; run the sign-in again".into())),
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> (StatusCode, Html<String>) {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>mcp-broker: {t}</title>\
         <style>body{{font:16px system-ui,sans-serif;margin:4em auto;max-width:32em;color:#222}}</style></head>\
         <body><h1>{t}</h1><p>{x}</p></body></html>",
        t = esc(title),
        x = esc(text)
    );
    (status, Html(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pasted_address_is_taken_once_only_when_it_is_this_sign_ins_callback() {
        let loopback = Loopback::bind(None, None).await.unwrap();
        let inbox = loopback.inbox();
        let callback = loopback.redirect_uri();
        let expected = Expected { state: "s1".into(), issuer: "https://as.example".into(), iss_required: true };
        let waiting = tokio::spawn(loopback.wait(expected, Duration::from_secs(10)));
        while !inbox.expects("s1") {
            tokio::task::yield_now().await;
        }
        let authorize = "https://as.example/authorize?state=s1&client_id=c";
        assert!(matches!(inbox.deliver(authorize).await, Err(PasteError::NotTheCallback(_))), "the sign-in address itself is not the answer");
        let forged = format!("{callback}?code=c&state=other&iss=https%3A%2F%2Fas.example");
        assert_eq!(inbox.deliver(&forged).await.unwrap_err(), PasteError::NotThisSignIn);
        assert!(inbox.expects("s1"), "nothing was used up");

        let right = format!("{callback}?code=the-code&state=s1&iss=https%3A%2F%2Fas.example");
        let delivered = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.deliver(&right).await }
        });
        let received = waiting.await.unwrap().unwrap();
        assert_eq!(received.code.secret(), "the-code");
        received.finish(Ok(())).await;
        assert_eq!(delivered.await.unwrap(), Ok(Ok(())));
        assert_eq!(inbox.deliver(&format!("{callback}?code=x&state=s1")).await.unwrap_err(), PasteError::Finished, "once");
    }
}
