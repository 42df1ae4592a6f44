//! Single flight per server: a refresh, a sign-in or a sign-out of one server happens once
//! at a time, and everyone else asking meanwhile waits for its result (then finds the work
//! done and reuses it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One async lock per server name.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Flights {
    /// Wait for `name`'s lock; held until the guard is dropped.
    pub(crate) async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default().clone();
        m.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_flight_per_name_others_run() {
        let f = Flights::default();
        let a = f.lock("a").await;
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), f.lock("a")).await.is_err());
        let _b = f.lock("b").await;
        drop(a);
        let _a2 = f.lock("a").await;
    }
}
