//! The broker service behind the app: run in this process when no service answers on the
//! control socket, otherwise attach to the one that does (`mcp-broker daemon`, or another
//! copy of the app). Either way the app talks to it only through the control socket.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcp_broker::service::client::Control;
use mcp_broker::service::instance::{InstanceError, Paths};
use mcp_broker::vault::Home;

/// How long to wait for a service started here to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Who runs the service the app talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// This process: quitting the app stops the service.
    InProcess,
    /// Another process (a daemon or another app): quitting the app leaves it running.
    Attached,
}

/// The service as the app sees it.
pub struct Supervisor {
    home: Home,
    socket: PathBuf,
    control: Control,
    inner: Mutex<Inner>,
}

struct Inner {
    mode: Mode,
    /// The thread running the in-process service, when there is one.
    thread: Option<JoinHandle<()>>,
    /// Told when the in-process service stops, for whatever reason.
    on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Supervisor {
    /// Attach to the running service, or start one in this process.
    pub fn start_or_attach(home: Home) -> anyhow::Result<Arc<Self>> {
        let socket = Paths::of(&home).socket;
        let (mode, thread) = if answers(&socket) { (Mode::Attached, None) } else { start_in_process(&home, &socket)? };
        // The service answers now, so this never starts a daemon of its own.
        let control = {
            let home = home.clone();
            block_on(async move { Control::connect_or_start(&home).await })?
        };
        tracing::info!("mcp-broker service: {}", if mode == Mode::InProcess { "running in this app" } else { "attached to a running service" });
        Ok(Arc::new(Self { home, socket, control, inner: Mutex::new(Inner { mode, thread, on_stop: None }) }))
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Call `f` when the in-process service stops (a `mcp-broker stop`, a signal, Quit).
    pub fn on_stop(self: &Arc<Self>, f: impl Fn() + Send + Sync + 'static) {
        let f: Arc<dyn Fn() + Send + Sync> = Arc::new(f);
        self.lock().on_stop = Some(f);
        self.watch();
    }

    /// When the service the app attached to went away, take over: run it here.
    pub fn revive(self: &Arc<Self>) -> anyhow::Result<()> {
        if answers(&self.socket) {
            return Ok(());
        }
        let mut inner = self.lock();
        if inner.mode == Mode::InProcess {
            return Ok(()); // ours is stopping; the app stops with it
        }
        let (mode, thread) = start_in_process(&self.home, &self.socket)?;
        inner.mode = mode;
        inner.thread = thread;
        drop(inner);
        self.watch();
        Ok(())
    }

    /// Ask an in-process service to stop and wait a little for it. An attached service is
    /// left running: it belongs to whoever started it.
    pub async fn stop(&self) {
        if self.mode() != Mode::InProcess {
            return;
        }
        let _ = self.control.shutdown().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.lock().thread.as_ref().is_some_and(|t| !t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Watch the in-process thread and report its end.
    fn watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            let Some(me) = me.upgrade() else { return };
            let (finished, on_stop) = {
                let inner = me.lock();
                match &inner.thread {
                    Some(t) if inner.mode == Mode::InProcess => (t.is_finished(), inner.on_stop.clone()),
                    _ => return,
                }
            };
            if finished {
                if let Some(f) = on_stop {
                    f();
                }
                return;
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a service answers on the control socket.
fn answers(socket: &std::path::Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

/// Run `mcp_broker::service::run` on its own thread and tokio runtime, and wait until it
/// answers. Losing the race for the instance lock to another starter means attaching to it.
fn start_in_process(home: &Home, socket: &std::path::Path) -> anyhow::Result<(Mode, Option<JoinHandle<()>>)> {
    let (tx, rx) = mpsc::channel::<anyhow::Error>();
    let service_home = home.clone();
    let thread = std::thread::Builder::new().name("mcp-broker-service".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("mcp-broker-svc").enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(e.into());
                return;
            }
        };
        if let Err(e) = runtime.block_on(mcp_broker::service::run(service_home)) {
            tracing::error!("the mcp-broker service stopped: {e:#}");
            let _ = tx.send(e);
        }
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if answers(socket) {
            if thread.is_finished() {
                // Another process won the instance lock and serves the socket.
                return Ok((Mode::Attached, None));
            }
            return Ok((Mode::InProcess, Some(thread)));
        }
        if let Ok(e) = rx.try_recv() {
            if matches!(e.downcast_ref::<InstanceError>(), Some(InstanceError::AlreadyRunning)) {
                // Someone else is starting it: wait for their socket.
                let deadline = Instant::now() + START_TIMEOUT;
                while Instant::now() < deadline {
                    if answers(socket) {
                        return Ok((Mode::Attached, None));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            return Err(e.context("cannot start the mcp-broker service"));
        }
        if Instant::now() > deadline {
            anyhow::bail!("the mcp-broker service did not answer on {} within {} s", socket.display(), START_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run a future to completion on a short-lived runtime of its own thread (only at start-up;
/// safe whether or not the caller is inside a runtime).
fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(f))
        .join()
        .expect("the start-up thread panicked")
}
