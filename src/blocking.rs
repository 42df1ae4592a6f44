//! Blocking work (a D-Bus round trip to the keychain, an SQLite query) called from async
//! code. The service runs one async worker: such a call must hand that worker's other tasks
//! to another thread for its duration (`block_in_place`) instead of stalling every host.

/// Run `f`, off the async worker when on a multi-threaded runtime; elsewhere (a
/// current-thread runtime, no runtime) just run it.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
