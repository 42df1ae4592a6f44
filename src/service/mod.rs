//! The broker service: one per user, owning the engine, serving two listeners.
//!
//! - the **control socket** (HTTP over a 0600 Unix socket): the API every client uses —
//!   the CLI, the stdio bridge, the tray app ([`control`]);
//! - the **MCP endpoint** on loopback TCP for hosts that speak Streamable HTTP, guarded by
//!   per-host keys, `Origin` and `Host` checks ([`endpoint`]).
//!
//! The control API's wire types are in [`api`], shared by the service and [`client`].
//!
//! Both hand MCP traffic to the one [`crate::mcp::Proxy`].

pub mod api;
pub mod client;
pub mod control;
pub mod instance;
pub mod keeper;
pub mod endpoint;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use crate::audit::Audit;
use crate::broker::Broker;
use crate::consent::Consent;
use crate::hosts::Hosts;
use crate::platform::{process, socket};
use crate::oauth::login::{browser::BrowserError, Progress};
use crate::mcp::Proxy;
use crate::vault::Home;
use instance::{InstanceError, Paths, Settings};

/// How long open streams may keep a stopping service alive.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a stopping service waits for the audit of the last calls to be written.
const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// What the service shares with its request handlers.
pub struct Service {
    pub broker: Arc<Broker>,
    pub proxy: Proxy,
    pub hosts: Hosts,
    pub consent: Arc<Consent>,
    pub audit: Arc<Audit>,
    pub port: u16,
    /// Set to true to stop the service.
    pub shutdown: watch::Sender<bool>,
}

impl Service {
    /// The loopback URL of the MCP endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One line per config file the service cannot use now (`servers.json`, `hosts.json`,
    /// `consent.json`, `service.json`), each naming the file and the fix; empty when all is
    /// well. Cheap enough for every status poll: `servers.json` comes from the store's
    /// cache, `consent.json` is read again only while damaged, the other two are small.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = self.broker.vault().store.with(|_| ()) {
            out.push(e.to_string());
        }
        if let Some(e) = self.hosts.problem() {
            out.push(e.to_string());
        }
        if let Some(problem) = self.consent.problem() {
            out.push(problem);
        }
        if let Err(e) = Settings::load(&Paths::of(&self.broker.vault().home)) {
            out.push(format!("{e} (the HTTP endpoint runs on port {} until then)", self.port));
        }
        out
    }
}

/// Logins the proxy starts on a host's behalf have no terminal: the URL goes to the log.
struct LogProgress;

impl Progress for LogProgress {
    fn open_url(&self, url: &Url) {
        // The address carries the sign-in's `state`: it goes to the user (`status`), not the log.
        tracing::warn!("sign-in needed: opening the browser; `mcp-broker status` shows the address if it does not open");
        tracing::debug!("sign-in address: {url}");
    }
    fn browser_failed(&self, error: &BrowserError) {
        match error {
            BrowserError::Launch(why) => tracing::warn!("could not start the browser ({why}); `mcp-broker status` shows the address to open"),
            other => tracing::warn!("{other}"),
        }
    }
    fn paste_url(&self, _url: &Url) {
        // Not a host's sign-in: those open the browser. The URL carries `state`: not logged.
        tracing::warn!("sign-in needed: the host that asked shows the address, and so does `mcp-broker status`");
    }
    fn show_code(&self, prompt: &crate::oauth::device::UserPrompt) {
        // The code itself is a secret: only where to enter it is logged.
        tracing::warn!("sign-in needed: enter the code `mcp-broker status` shows at {}", prompt.verification_uri);
    }
    fn note(&self, text: &str) {
        tracing::info!("{text}");
    }
}

/// Run the service until a shutdown request or a signal.
pub async fn run(home: Home) -> anyhow::Result<()> {
    home.ensure()?;
    process::keep_memory_private();
    process::raise_fd_limit(2 * endpoint::MAX_CONNECTIONS + 256);
    let paths = Paths::of(&home);
    let _lock = instance::lock(&paths)?;
    let broker = Arc::new(Broker::open(home.clone())?);
    let audit = Arc::new(Audit::open(&home.data_dir)?);
    let hosts = Hosts::open(&home.config_dir, &home.keychain_service)?;
    let tcp = bind_tcp(&paths).await?;
    let port = tcp.local_addr()?.port();
    let unix = socket::bind_private(&paths.socket).map_err(|e| InstanceError::Io(paths.socket.clone(), e))?;
    let consent = Arc::new(Consent::open(&home.config_dir));
    let proxy = Proxy::new(broker.clone(), audit.clone(), consent.clone(), Arc::new(LogProgress))?;
    let service = Arc::new(Service { broker, proxy, hosts, consent, audit, port, shutdown: watch::channel(false).0 });
    tracing::info!("mcp-broker service listening on {} and {}", paths.socket.display(), service.endpoint());
    let stopping = || {
        let mut rx = service.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let control = axum::serve(unix, control::router(service.clone())).with_graceful_shutdown(stopping());
    let endpoint = endpoint::serve(tcp, service.clone(), stopping());
    // Graceful shutdown lets requests in flight finish, but open streams (a bridge's GET
    // stream, a long SSE answer) would hold the service forever: they get a grace period.
    let grace = {
        let stopped = stopping();
        async move {
            stopped.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(control, endpoint) } => { r?; }
        _ = grace => tracing::info!("stopping with streams still open"),
        _ = shutdown_signal() => {}
    }
    if !service.audit.flush(AUDIT_FLUSH) {
        tracing::warn!("the last calls may be missing from the audit: its writer did not finish in {AUDIT_FLUSH:?}");
    }
    let _ = std::fs::remove_file(&paths.socket);
    Ok(())
}

/// The kept port if it is free, else a new one (remembered from then on). With damaged
/// settings the service still starts, on a new port, and leaves the file as it is (see
/// [`Service::problems`]).
async fn bind_tcp(paths: &Paths) -> anyhow::Result<TcpListener> {
    let settings = match Settings::load(paths) {
        Ok(settings) => Some(settings),
        Err(e) => {
            tracing::error!("{e}; the HTTP endpoint gets a new port for now, not kept");
            None
        }
    };
    if let Some(port) = settings.as_ref().and_then(|s| s.port) {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => tracing::warn!("port {port} is taken ({e}); choosing a new one: update your HTTP hosts"),
        }
    }
    let l = TcpListener::bind(("127.0.0.1", 0)).await?;
    if let Some(mut settings) = settings {
        settings.port = Some(l.local_addr()?.port());
        settings.save(paths)?;
    }
    Ok(l)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            return;
        }
    }
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(home: &Home) -> Service {
        home.ensure().unwrap();
        let broker = Arc::new(Broker::open(home.clone()).unwrap());
        let audit = Arc::new(Audit::open(&home.data_dir).unwrap());
        let consent = Arc::new(Consent::open(&home.config_dir));
        let hosts = Hosts::open(&home.config_dir, &home.keychain_service).unwrap();
        let proxy = Proxy::new(broker.clone(), audit.clone(), consent.clone(), Arc::new(LogProgress)).unwrap();
        Service { broker, proxy, hosts, consent, audit, port: 41000, shutdown: watch::channel(false).0 }
    }

    #[test]
    fn problems_name_each_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        assert!(service(&home).problems().is_empty(), "a fresh home has none");
        let files = ["servers.json", "hosts.json", "consent.json", "service.json"];
        for f in files {
            std::fs::write(home.config_dir.join(f), "{oops").unwrap();
        }
        let problems = service(&home).problems();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        for (line, f) in problems.iter().zip(files) {
            assert!(line.contains(&format!("{f} is damaged")) && line.contains("move it aside"), "{line}");
        }
        assert!(problems[3].contains("port 41000"), "{}", problems[3]);
        for f in files {
            assert_eq!(std::fs::read_to_string(home.config_dir.join(f)).unwrap(), "{oops", "{f} untouched");
        }
    }
}
