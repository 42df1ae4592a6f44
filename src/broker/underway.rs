//! Sign-ins in progress, as the user should see them wherever they are: which server, who
//! asked (a host, or the user), and what to do (the address to open, or the code to enter).
//! `status` lists them, `login NAME` joins one instead of starting another, and a host's
//! request that needs one is answered with its address.
//!
//! A sign-in is listed from its start to its end; its [`Recorder`] stands between the
//! sign-in and the caller's progress, noting the address or code as they are shown.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::sync::watch;
use url::Url;

use std::sync::Arc;
use std::time::Duration;

use super::{Broker, Error, LoginRequest};
use crate::oauth::discovery::DiscoveryError;
use crate::oauth::login::browser::BrowserError;
use crate::oauth::device::UserPrompt;
use crate::oauth::login::{DynProgress, Method, Progress};

/// One sign-in in progress. The address carries the sign-in's `state` and the code is a
/// secret: they go to the user only (`Debug` leaves them out).
#[derive(Clone)]
pub struct SignIn {
    pub server: String,
    /// The host whose request started it; `None`: the user did.
    pub asked_by: Option<String>,
    pub started_at: OffsetDateTime,
    pub shown: Shown,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("server", &self.server).field("asked_by", &self.asked_by).finish_non_exhaustive()
    }
}

/// What the user was shown so far.
#[derive(Clone, Default)]
pub enum Shown {
    /// Discovery or registration still runs.
    #[default]
    Nothing,
    /// The authorization URL: opened in the browser here (`Browser`), or to be opened
    /// anywhere, the address it ends on pasted back (`Paste`).
    Address { method: Method, url: Url },
    /// A code to enter at an address (RFC 8628).
    Code(UserPrompt),
}

/// A sign-in or step-up a host's request needs, to run in the background.
pub type HostWork = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'static>>;

/// How a sign-in ended, for those who joined it (`Err`: the one-line reason).
pub type Outcome = Option<Result<(), String>>;

/// What a sign-in has shown so far, and how it ended once it has.
#[derive(Clone, Default)]
pub struct Progressed {
    pub shown: Shown,
    pub outcome: Outcome,
}

struct Entry {
    asked_by: Option<String>,
    started_at: OffsetDateTime,
    /// Its sign-in's number: a new sign-in of the same server replaces a finished one's entry.
    id: u64,
    state: watch::Receiver<Progressed>,
}

impl Entry {
    fn info(&self, server: &str) -> SignIn {
        SignIn { server: server.to_owned(), asked_by: self.asked_by.clone(), started_at: self.started_at, shown: self.state.borrow().shown.clone() }
    }
}

pub(crate) struct Underway {
    entries: Mutex<HashMap<String, Entry>>,
    /// Servers whose sign-in a host's request started and that are not listed yet (still
    /// waiting for the server's flight, or discovering). Locked after `entries`.
    starting: Mutex<std::collections::HashSet<String>>,
    next: std::sync::atomic::AtomicU64,
    /// Bumped whenever a sign-in starts, shows something or ends.
    changed: watch::Sender<u64>,
}

impl Default for Underway {
    fn default() -> Self {
        Self { entries: Mutex::default(), starting: Mutex::default(), next: Default::default(), changed: watch::channel(0).0 }
    }
}

impl Underway {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// List a sign-in of `server` as started; its [`Recorder`] passes progress on to `inner`.
    pub(crate) fn begin<'a>(&'a self, server: &str, asked_by: Option<String>, inner: &'a DynProgress) -> Recorder<'a> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(Progressed::default());
        self.lock().insert(server.to_owned(), Entry { asked_by, started_at: OffsetDateTime::now_utc(), id, state: rx });
        self.bump();
        Recorder { underway: self, server: server.to_owned(), id, inner, state: tx }
    }

    fn end(&self, server: &str, id: u64) {
        let mut entries = self.lock();
        if entries.get(server).is_some_and(|e| e.id == id) {
            entries.remove(server);
        }
        drop(entries);
        self.bump();
    }
}

/// The progress of one listed sign-in: notes what is shown, passes it on, and unlists the
/// sign-in when dropped (telling those who joined how it ended).
pub(crate) struct Recorder<'a> {
    underway: &'a Underway,
    server: String,
    id: u64,
    inner: &'a DynProgress,
    state: watch::Sender<Progressed>,
}

impl Recorder<'_> {
    pub(crate) fn finish(self, outcome: Result<(), String>) {
        self.state.send_modify(|s| s.outcome = Some(outcome));
    }

    fn show(&self, shown: Shown) {
        self.state.send_modify(|s| s.shown = shown);
        self.underway.bump();
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.underway.end(&self.server, self.id);
        self.state.send_if_modified(|s| {
            let unset = s.outcome.is_none();
            if unset {
                s.outcome = Some(Err("the sign-in was cancelled".into()));
            }
            unset
        });
    }
}

impl Progress for Recorder<'_> {
    fn open_url(&self, url: &Url) {
        self.show(Shown::Address { method: Method::Browser, url: url.clone() });
        self.inner.open_url(url);
    }
    fn browser_failed(&self, error: &BrowserError) {
        // Nobody sees a browser that did not open: the address is to be opened by hand.
        let shown = self.state.borrow().shown.clone();
        if let Shown::Address { url, .. } = shown {
            self.show(Shown::Address { method: Method::Paste, url });
        }
        self.inner.browser_failed(error);
    }
    fn paste_url(&self, url: &Url) {
        self.show(Shown::Address { method: Method::Paste, url: url.clone() });
        self.inner.paste_url(url);
    }
    fn show_code(&self, prompt: &UserPrompt) {
        self.show(Shown::Code(prompt.clone()));
        self.inner.show_code(prompt);
    }
    fn note(&self, text: &str) {
        self.inner.note(text);
    }
}

/// A sign-in in progress that someone joined: what it is, and its progress as it goes.
pub struct Joined {
    pub info: SignIn,
    state: watch::Receiver<Progressed>,
}

impl Joined {
    /// What it shows the user, once it shows something (`None`: it ended first).
    pub async fn shown(&mut self) -> Option<Shown> {
        let state = self.state.wait_for(|s| !matches!(s.shown, Shown::Nothing) || s.outcome.is_some()).await.ok()?;
        (!matches!(state.shown, Shown::Nothing)).then(|| state.shown.clone())
    }

    /// How it ended.
    pub async fn ended(mut self) -> Result<(), String> {
        match self.state.wait_for(|s| s.outcome.is_some()).await {
            Ok(s) => s.outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the sign-in was cancelled".into()),
        }
    }
}

impl Broker {
    /// The sign-ins in progress, by server name.
    pub fn sign_ins(&self) -> Vec<SignIn> {
        let mut all: Vec<SignIn> = self.underway.lock().iter().map(|(server, e)| e.info(server)).collect();
        all.sort_by(|a, b| a.server.cmp(&b.server));
        all
    }

    /// The sign-in of `server` in progress, to follow.
    pub fn join_sign_in(&self, server: &str) -> Option<Joined> {
        self.underway.lock().get(server).map(|e| Joined { info: e.info(server), state: e.state.clone() })
    }

    /// Ticks whenever a sign-in starts, shows something or ends (the tray app and
    /// [`Self::sign_in_for_host`] wait on it).
    pub fn sign_ins_changed(&self) -> watch::Receiver<u64> {
        self.underway.changed.subscribe()
    }

    /// Start (or find) the sign-in a host's request needs and wait for it at most `wait`
    /// once it shows the user something: `Ok(None)` when it ended signed in by then, else
    /// what it shows (the sign-in goes on in the background, so the request can be answered
    /// with what the user is to do rather than hang).
    pub async fn sign_in_for_host(self: &Arc<Self>, name: &str, req: LoginRequest, progress: Arc<DynProgress>, wait: Duration) -> Result<Option<SignIn>, Error> {
        let (me, server) = (self.clone(), name.to_owned());
        let work = async move { me.ensure_signed_in(&server, &req, progress.as_ref()).await.map(drop) };
        self.wait_for_host(name, Box::pin(work), wait).await
    }

    /// Run `work` (a sign-in or step-up of `name`) in the background, unless a sign-in of
    /// `name` is already under way or about to be (then follow that one), and wait as
    /// [`Self::sign_in_for_host`] does. Finding and starting are one step, so hosts asking
    /// at once start one sign-in.
    pub async fn wait_for_host(self: &Arc<Self>, name: &str, work: HostWork, wait: Duration) -> Result<Option<SignIn>, Error> {
        let mut changed = self.sign_ins_changed();
        let mut task = self.start_for_host(name, work);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if let Some(answer) = self.host_answer(name, task.is_some(), wait, &mut deadline) {
                return Ok(answer);
            }
            let ended = async {
                match task.as_mut() {
                    Some(t) => t.await.unwrap_or_else(|e| Err(Error::Joined(format!("the sign-in stopped: {e}")))),
                    None => std::future::pending().await,
                }
            };
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = ended => return outcome.map(|()| None),
                _ = changed.changed() => {}
                () = until => {}
            }
        }
    }

    /// Spawn `work` unless a sign-in of `name` is listed or a host's is starting.
    fn start_for_host(self: &Arc<Self>, name: &str, work: HostWork) -> Option<tokio::task::JoinHandle<Result<(), Error>>> {
        {
            let entries = self.underway.lock();
            let mut starting = self.underway.starting.lock().unwrap_or_else(|p| p.into_inner());
            if entries.contains_key(name) || !starting.insert(name.to_owned()) {
                return None;
            }
        }
        let (me, server) = (self.clone(), name.to_owned());
        Some(tokio::spawn(async move {
            let outcome = work.await;
            match &outcome {
                Err(e @ (Error::NotAskedYet(_) | Error::Discovery(DiscoveryError::NotProtected { .. }))) => {
                    tracing::debug!("no sign-in to {server}: {e}");
                }
                Err(e) => tracing::warn!("the sign-in to {server} a host asked for failed: {e}"),
                Ok(()) => {}
            }
            me.underway.starting.lock().unwrap_or_else(|p| p.into_inner()).remove(&server);
            me.underway.bump();
            outcome
        }))
    }

    /// What a waiting host request is answered with now, if anything: the sign-in's address
    /// or code once it shows one (at once, unless the browser here is working on it: then
    /// after `wait`), or `Some(None)` when the sign-in it followed has ended.
    fn host_answer(&self, name: &str, own_task: bool, wait: Duration, deadline: &mut Option<tokio::time::Instant>) -> Option<Option<SignIn>> {
        let now = tokio::time::Instant::now();
        match self.join_sign_in(name).map(|j| j.info) {
            Some(SignIn { shown: Shown::Nothing, .. }) => None,
            Some(info) if !matches!(info.shown, Shown::Address { method: Method::Browser, .. }) => Some(Some(info)),
            Some(info) => match *deadline {
                Some(d) if now >= d => Some(Some(info)),
                Some(_) => None,
                None if wait.is_zero() => Some(Some(info)),
                None => {
                    *deadline = Some(now + wait);
                    None
                }
            },
            None if own_task => None,
            None => {
                let starting = self.underway.starting.lock().unwrap_or_else(|p| p.into_inner()).contains(name);
                (!starting).then_some(None) // the one followed has ended
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl Progress for Quiet {
        fn open_url(&self, _: &Url) {}
        fn browser_failed(&self, _: &BrowserError) {}
        fn paste_url(&self, _: &Url) {}
        fn show_code(&self, _: &UserPrompt) {}
        fn note(&self, _: &str) {}
    }

    fn joined(u: &Underway, server: &str) -> Joined {
        let e = u.lock();
        let e = &e[server];
        Joined { info: e.info(server), state: e.state.clone() }
    }

    #[tokio::test]
    async fn a_sign_in_is_listed_with_what_it_showed_until_it_ends_and_joiners_learn_how() {
        let u = Underway::default();
        let r = u.begin("linear", Some("cursor".into()), &Quiet);
        let mut j = joined(&u, "linear");
        assert!(matches!(j.info.shown, Shown::Nothing));
        assert_eq!(j.info.asked_by.as_deref(), Some("cursor"));
        r.paste_url(&Url::parse("https://as.example/authorize?state=s").unwrap());
        assert!(matches!(j.shown().await, Some(Shown::Address { method: Method::Paste, .. })));
        assert!(matches!(joined(&u, "linear").info.shown, Shown::Address { .. }), "the list shows it too");
        r.finish(Err("denied".into()));
        assert!(u.lock().is_empty(), "unlisted once it ends");
        assert_eq!(j.ended().await, Err("denied".into()));
    }

    #[tokio::test]
    async fn a_dropped_sign_in_tells_joiners_it_was_cancelled_and_an_old_one_does_not_unlist_a_new_one() {
        let u = Underway::default();
        let first = u.begin("a", None, &Quiet);
        let mut j = joined(&u, "a");
        let second = u.begin("a", None, &Quiet); // the first's entry is replaced
        drop(first);
        assert!(u.lock().contains_key("a"), "the second sign-in is still listed");
        assert!(j.shown().await.is_none(), "it ended before showing anything");
        assert_eq!(j.ended().await, Err("the sign-in was cancelled".into()));
        drop(second);
        assert!(u.lock().is_empty());
    }
}
