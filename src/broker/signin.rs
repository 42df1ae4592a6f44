//! Signing a server in: discover, choose a name, obtain a client, authorize through the
//! browser, then store: secrets in the keychain first, the records after, so a crash in
//! between never leaves metadata pointing at tokens that were not stored. Nothing is stored
//! unless every step succeeds.

use super::{account_hint, step_up, validate_name, Asker, Broker, Error, LoginRequest};
use crate::oauth::client::{Credentials, RegistrationKind};
use crate::oauth::discovery::{self, Discovery};
use crate::oauth::device::{self, DeviceError};
use crate::oauth::login::{self, scopes, DynProgress, LoginError, Loopback, Method, Progress, TokenError};
use crate::oauth::quirks::{self, Quirks};
use crate::oauth::registration;
use crate::oauth::tokens::Issued;
use crate::vault::{self, ClientRecord, Placement, ServerRecord, ServerState, VaultError};

impl Broker {
    /// Discover, register, sign in through the browser, store.
    pub async fn login(&self, req: &LoginRequest, progress: &DynProgress) -> Result<ServerRecord, Error> {
        self.vault.secrets.check_writable().map_err(VaultError::from)?;
        let quirks = self.quirks_for(req.name.as_deref(), req)?;
        let discovery = discovery::discover_from(&self.http, &req.url, None, &quirks).await.map_err(hinted)?;
        let name = self.choose_name(req, &discovery)?;
        let _flight = self.flights.lock(&name).await;
        self.login_as(&name, &discovery, req, &quirks, progress).await
    }

    /// The settings a sign-in of `name` uses: those given with it, else those stored.
    fn quirks_for(&self, name: Option<&str>, req: &LoginRequest) -> Result<Quirks, Error> {
        if let Some(q) = &req.quirks {
            return Ok(q.clone());
        }
        let stored = name.map(|n| self.vault.store.with(|r| r.servers.get(n).map(|s| s.quirks.clone()))).transpose()?.flatten();
        Ok(stored.unwrap_or_default())
    }

    /// Make sure `name` is signed in, signing in through the browser if not. Concurrent
    /// callers share one sign-in. Returns the server's record. A server met for the first
    /// time that lets the probe through is not signed in to until it refuses a request
    /// ([`Error::NotAskedYet`]): its 401 then says which scopes it wants.
    pub async fn ensure_signed_in(&self, name: &str, req: &LoginRequest, progress: &DynProgress) -> Result<ServerRecord, Error> {
        let _flight = self.flights.lock(name).await;
        if let Some(record) = self.usable(name)? {
            return Ok(record);
        }
        self.vault.secrets.check_writable().map_err(VaultError::from)?;
        let quirks = self.quirks_for(Some(name), req)?;
        let discovery = discovery::discover_from(&self.http, &req.url, req.refused.as_ref(), &quirks).await.map_err(hinted)?;
        if !discovery.asked && self.vault.store.with(|r| !r.servers.contains_key(name))? {
            return Err(Error::NotAskedYet(name.to_owned()));
        }
        self.login_as(name, &discovery, req, &quirks, progress).await
    }

    /// Step-up: sign in again asking for `needed` on top of what was granted (step
    /// `attempt` of a request), unless a concurrent step-up already got them. `asker` says
    /// for which host and where its user is (see [`LoginRequest`]).
    /// A 403 that names no scope (servers on the official Python SDK answer so) is stepped
    /// up with what the spec's selection falls back to: the resource metadata's
    /// `scopes_supported`, read again.
    pub async fn step_up(&self, name: &str, needed: &[String], attempt: u32, asker: &Asker, progress: &DynProgress) -> Result<ServerRecord, Error> {
        let refused = |reason| Error::StepUp { name: name.to_owned(), reason };
        let _flight = self.flights.lock(name).await;
        let record = self.server(name)?;
        step_up::within_limit(needed, attempt).map_err(refused)?;
        let mut discovered = None;
        let mut needed = needed.to_vec();
        if needed.is_empty() {
            let d = discovery::discover_from(&self.http, &record.url, None, &record.quirks).await?;
            needed = d.resource_metadata.scopes_supported.clone().unwrap_or_default();
            if needed.is_empty() {
                return Err(refused(step_up::StepUpRefused::Unnamed));
            }
            discovered = Some(d);
        }
        if record.state == ServerState::SignedIn && needed.iter().all(|s| record.scopes.contains(s)) {
            return Ok(record);
        }
        let wanted = step_up::scopes(&record.scopes, &needed, attempt).map_err(refused)?;
        let req = LoginRequest {
            url: record.url.clone(),
            name: Some(name.to_owned()),
            extra_scopes: wanted,
            asked_by: asker.host.clone(),
            headless: asker.headless.clone(),
            ..Default::default()
        };
        let discovery = match discovered {
            Some(d) => d,
            None => discovery::discover_from(&self.http, &req.url, None, &record.quirks).await?,
        };
        self.login_as(name, &discovery, &req, &record.quirks, progress).await
    }

    /// The record, if the server is signed in with tokens in the keychain.
    pub(super) fn usable(&self, name: &str) -> Result<Option<ServerRecord>, Error> {
        let record = self.vault.store.with(|r| r.servers.get(name).cloned())?;
        match record {
            Some(r) if r.state == ServerState::SignedIn && self.tokens(name)?.is_some() => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    async fn login_as(&self, name: &str, discovery: &Discovery, req: &LoginRequest, quirks: &Quirks, progress: &DynProgress) -> Result<ServerRecord, Error> {
        let previous = self.vault.store.with(|r| r.servers.get(name).map(|s| s.scopes.clone()))?.unwrap_or_default();
        let selected = scopes::select(discovery.challenge.as_ref(), &discovery.resource_metadata, &discovery.auth_server);
        let wanted = scopes::union(&scopes::union(&selected, &req.extra_scopes), &previous);
        let recorder = self.underway.begin(name, req.asked_by.clone(), progress);
        let saved = match self.authorize_with_retry(name, req, discovery, quirks, &wanted, &recorder).await {
            Ok((credentials, issued)) => self.save_login(name, discovery, &credentials, &issued, Asked { scopes: &wanted, quirks }, false),
            Err(e) => Err(hinted(e)),
        };
        recorder.finish(saved.as_ref().map(drop).map_err(ToString::to_string));
        saved
    }

    /// Sign in once; a dynamically registered client the AS has forgotten (or registered
    /// without the grant now used) is registered again, once.
    async fn authorize_with_retry(
        &self,
        name: &str,
        req: &LoginRequest,
        discovery: &Discovery,
        quirks: &Quirks,
        scopes: &[String],
        progress: &(dyn Progress + Send + Sync + '_),
    ) -> Result<(Credentials, Issued), Error> {
        let timeout = req.timeout.unwrap_or(login::DEFAULT_TIMEOUT);
        let (method, why) = choose(req, discovery, quirks);
        if method == Method::Device && !discovery.auth_server.offers_device_grant() {
            // Before any registration: nothing happens at an AS that cannot do it.
            return Err(LoginError::from(DeviceError::Unsupported { issuer: discovery.issuer().to_owned() }).into());
        }
        if let Some(why) = why {
            progress.note(&why);
        }
        let mut existing = self.reusable_client(name, discovery.issuer())?;
        let mut attempt = 0;
        loop {
            let (credentials, outcome) = match method {
                Method::Device => {
                    let credentials = self.obtain_client(req, discovery, existing.take(), DEVICE_REDIRECT_URI).await?;
                    let outcome = device::sign_in(&self.http, discovery, &credentials, quirks, scopes, timeout, progress).await.map_err(LoginError::from);
                    (credentials, outcome)
                }
                Method::Browser | Method::Paste => {
                    let loopback = Loopback::bind(quirks.callback_port, quirks.redirect_uri.clone()).await.map_err(|e| LoginError::Wait(e.into()))?;
                    let credentials = self.obtain_client(req, discovery, existing.take(), &loopback.redirect_uri()).await?;
                    let _listed = self.inboxes.list(loopback.inbox()); // a pasted address may answer too
                    let open_browser = method == Method::Browser;
                    let outcome = login::authorize(&self.http, discovery, &credentials, quirks, scopes, loopback, timeout, open_browser, progress).await;
                    (credentials, outcome)
                }
            };
            match outcome.as_ref().map_err(|e| register_again(attempt, e, &credentials)) {
                Err(Again::Replace) => self.forget_client(&credentials.client.key())?,
                Err(Again::Add) => {} // the old client stays: other servers' grants use it
                _ => return Ok((credentials, outcome?)),
            }
            attempt += 1;
        }
    }

    async fn obtain_client(&self, req: &LoginRequest, discovery: &Discovery, existing: Option<Credentials>, redirect_uri: &str) -> Result<Credentials, Error> {
        Ok(registration::obtain(&self.http, &discovery.auth_server, &req.client, existing, redirect_uri).await.map_err(LoginError::from)?)
    }

    pub(super) fn choose_name(&self, req: &LoginRequest, discovery: &Discovery) -> Result<String, Error> {
        let url = discovery.server.as_canonical();
        self.vault.store.with(|registry| {
            let base = match &req.name {
                Some(n) => n.clone(),
                // The server's first account (its name without `@`), else a new name.
                None => registry.servers.values().find(|s| s.url == url && !s.name.contains('@')).map(|s| s.name.clone()).unwrap_or_else(|| discovery.server.default_name()),
            };
            let name = match &req.account {
                Some(account) => format!("{}@{account}", base.split('@').next().unwrap_or(&base)),
                None => base,
            };
            validate_name(&name)?;
            if let Some(k) = registry.keyed.get(&name) {
                return Err(Error::NameTaken { name, url: k.url.clone() });
            }
            if let Some(o) = registry.open.get(&name).filter(|o| o.url != url) {
                return Err(Error::NameTaken { name, url: o.url.clone() });
            }
            match registry.servers.get(&name) {
                Some(s) if s.url != url => Err(Error::NameTaken { name, url: s.url.clone() }),
                _ => Ok(name),
            }
        })?
    }

    /// Store a grant: secrets first, then the records. `imported`: the client is another
    /// tool's (see [`super::import`]), never offered to a new sign-in.
    pub(super) fn save_login(
        &self,
        name: &str,
        discovery: &Discovery,
        credentials: &Credentials,
        issued: &Issued,
        asked: Asked<'_>,
        imported: bool,
    ) -> Result<ServerRecord, Error> {
        let Asked { scopes: requested, quirks } = asked;
        self.keep_client_secret(credentials)?;
        self.vault.secrets.set(&vault::server_account(name), &issued.tokens.to_secret()).map_err(VaultError::from)?;
        let at = Placement {
            name: name.to_owned(),
            url: discovery.server.as_canonical(),
            resource: discovery.resource.as_canonical(),
            client: credentials.client.key(),
            auth_server: (&discovery.auth_server).into(),
            quirks: quirks.clone(),
        };
        let record = ServerRecord::signed_in(at, issued, requested, account_hint(&issued.tokens.access_token));
        let client = ClientRecord { imported, ..self.client_record(credentials)? };
        self.vault.store.update(|r| {
            r.insert_client(client);
            r.open.remove(name); // it asks for a sign-in now
            r.servers.insert(name.to_owned(), record.clone());
        })?;
        Ok(record)
    }
}

/// What a sign-in asked for (the scopes), and with which settings.
pub(super) struct Asked<'a> {
    pub scopes: &'a [String],
    pub quirks: &'a Quirks,
}

/// A failed sign-in, with the setting that would fix it when its message matches one.
fn hinted(e: impl Into<Error>) -> Error {
    let e = e.into();
    let message = e.to_string();
    match quirks::hint(&message) {
        Some(hint) => Error::Hinted { message, hint },
        None => e,
    }
}

/// The redirect URI a client registered for a sign-in with a code carries: no browser comes
/// back to it, but a later browser sign-in reuses the client with a loopback port of its
/// own (RFC 8252 §7.3: any port).
const DEVICE_REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// How a sign-in goes, and the line that tells the user when it is not the browser they
/// might expect: what was asked for; else, with no browser where the user is, a code where
/// the AS offers one, or else a pasted address.
fn choose(req: &LoginRequest, discovery: &Discovery, quirks: &Quirks) -> (Method, Option<String>) {
    match (req.method, &req.headless) {
        (Some(method), _) => (method, None),
        // The response goes to a page elsewhere: the user brings its address back.
        (None, _) if quirks.redirect_uri.is_some() => {
            (Method::Paste, Some("This server's client sends the sign-in to its own page: open the address below in any browser, then paste the address it ends on.".into()))
        }
        (None, None) => (Method::Browser, None),
        (None, Some(why)) if discovery.auth_server.offers_device_grant() => {
            (Method::Device, Some(format!("No browser can be opened here ({why}): signing in with a code instead.")))
        }
        (None, Some(why)) => (
            Method::Paste,
            Some(format!("No browser can be opened here ({why}), and {} offers no sign-in with a code: open the address below in any browser.", discovery.issuer())),
        ),
    }
}

/// Whether a failed sign-in is worth one more try with a new registration, and what
/// becomes of the old client.
#[derive(Debug, PartialEq, Eq)]
enum Again {
    No,
    /// The AS does not know the dynamic client this home registered there (it was reset, or
    /// expired it): forget it, register anew.
    Replace,
    /// The AS knows it but does not let it use this grant (registered before the broker
    /// asked for the device grant): register one more client, keep the old.
    Add,
}

fn register_again(attempt: u32, error: &LoginError, credentials: &Credentials) -> Again {
    if attempt > 0 || credentials.client.kind != RegistrationKind::Dynamic {
        return Again::No;
    }
    match error {
        LoginError::Token(TokenError::InvalidClient(_)) | LoginError::Device(DeviceError::UnknownClient(_)) => Again::Replace,
        LoginError::Device(DeviceError::NotAllowed(_)) => Again::Add,
        _ => Again::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::{Client, TokenAuthMethod};

    fn creds(kind: RegistrationKind) -> Credentials {
        Credentials { client: Client { issuer: "https://as".into(), client_id: "c".into(), kind, auth_method: TokenAuthMethod::None }, secret: None }
    }

    #[test]
    fn invalid_client_registers_a_dynamic_client_again_once() {
        let e = LoginError::Token(TokenError::InvalidClient("gone".into()));
        assert_eq!(register_again(0, &e, &creds(RegistrationKind::Dynamic)), Again::Replace);
        assert_eq!(register_again(1, &e, &creds(RegistrationKind::Dynamic)), Again::No);
        assert_eq!(register_again(0, &e, &creds(RegistrationKind::PreRegistered)), Again::No, "a pre-registered client is the user's: never replaced");
        assert_eq!(register_again(0, &LoginError::Token(TokenError::InvalidGrant("x".into())), &creds(RegistrationKind::Dynamic)), Again::No);
        let no_device_grant = LoginError::Device(DeviceError::NotAllowed("unauthorized_client".into()));
        assert_eq!(register_again(0, &no_device_grant, &creds(RegistrationKind::Dynamic)), Again::Add, "a client registered before the device grant was asked for stays for the grants it holds");
        assert_eq!(register_again(0, &LoginError::Device(DeviceError::Denied), &creds(RegistrationKind::Dynamic)), Again::No);
    }

    fn discovery(device: bool) -> Discovery {
        let as_json = serde_json::json!({
            "issuer": "https://as.example", "authorization_endpoint": "https://as.example/a", "token_endpoint": "https://as.example/t",
            "code_challenge_methods_supported": ["S256"],
            "device_authorization_endpoint": if device { Some("https://as.example/device") } else { None },
        });
        Discovery::for_tests("https://mcp.example/mcp", serde_json::from_value(as_json).unwrap())
    }

    #[test]
    fn without_a_browser_a_code_is_chosen_where_the_as_offers_it_else_a_pasted_address() {
        let req = |method, headless: Option<&str>| LoginRequest { method, headless: headless.map(str::to_owned), ..Default::default() };
        assert_eq!(choose(&req(None, None), &discovery(true), &Quirks::default()), (Method::Browser, None));
        let (m, why) = choose(&req(None, Some("SSH session")), &discovery(true), &Quirks::default());
        assert_eq!(m, Method::Device);
        assert!(why.unwrap().contains("SSH session"));
        let (m, why) = choose(&req(None, Some("no display")), &discovery(false), &Quirks::default());
        assert_eq!(m, Method::Paste);
        assert!(why.unwrap().contains("offers no sign-in with a code"));
        assert_eq!(choose(&req(Some(Method::Browser), Some("SSH session")), &discovery(true), &Quirks::default()), (Method::Browser, None), "what the user asked for stands");
        assert_eq!(choose(&req(Some(Method::Device), None), &discovery(false), &Quirks::default()).0, Method::Device, "and fails with the reason");
    }
}
