//! Where `hosts connect` keeps what it takes out of a host's file, for the programs beside
//! the service (the CLI, the tray app): a key becomes an API-key server through the control
//! API (`POST /v1/servers`, the service started if need be, only then), and an entry's old
//! text goes to the keychain.

use crate::broker::api_keys::KeyHeader;
use crate::hosts::adopt::Keeper;
use crate::service::api::AddServer;
use crate::service::client::{ClientError, Control};
use crate::vault::{Home, Keychain, SecretStore};

/// The [`Keeper`] of a home.
pub struct ServiceKeeper {
    home: Home,
    keychain: Keychain,
    control: tokio::sync::OnceCell<Control>,
}

impl ServiceKeeper {
    pub fn new(home: &Home) -> Self {
        Self { home: home.clone(), keychain: Keychain::new(home.keychain_service.clone()), control: tokio::sync::OnceCell::new() }
    }

    async fn add(&self, body: &AddServer) -> Result<(), ClientError> {
        let control = self.control.get_or_try_init(|| Control::connect_or_start_without(&self.home, &[])).await?;
        control.add_server(body).await.map(|_| ())
    }
}

impl Keeper for ServiceKeeper {
    /// Called from blocking code on a tokio runtime (a multi-threaded one's thread, or a
    /// blocking-pool thread): it waits there for the service.
    fn keep_key(&self, server: &str, url: &str, headers: &[KeyHeader]) -> Result<(), String> {
        let body = AddServer { name: server.to_owned(), url: url.to_owned(), headers: headers.to_vec() };
        crate::blocking::run(|| tokio::runtime::Handle::current().block_on(self.add(&body))).map_err(|e| e.to_string())
    }

    fn secrets(&self) -> &dyn SecretStore {
        &self.keychain
    }
}
