//! mcp-broker: signs local MCP hosts in to remote OAuth-protected MCP servers, once, safely.
//!
//! The modules follow the chain a request meets, each importing only those before it:
//!
//! 1. [`oauth`]: discovery, registration, sign-in, tokens, revocation (nothing stored).
//! 2. [`vault`]: secrets in the keychain, metadata in typed JSON files.
//! 3. [`broker`]: the lifecycle of a server's grant: sign in, refresh, sign out, once each.
//! 4. [`hosts`]: who is calling (HTTP host keys, the process behind a bridge).
//! 5. [`consent`]: which host may use which server and which of its tools.
//! 6. [`audit`]: what was called, by whom, with what result.
//! 7. [`mcp`]: the one proxy path to the remote server.
//! 8. [`service`]: the broker service: the control API, the loopback endpoint.
//! 9. [`bridge`]: the stdio bridge, a client of the service (nothing in the engine uses it).
//!
//! Under all of them: [`net`] (the bounded HTTP client), [`secret`] (values that cannot be
//! printed by accident), [`platform`] (what differs between operating systems) and
//! [`blocking`] (keychain calls off the async worker).

pub mod blocking;
pub mod net;
pub mod platform;
pub mod secret;

pub mod oauth;
pub mod vault;
pub mod broker;
pub mod hosts;
pub mod consent;
pub mod audit;
pub mod mcp;
pub mod service;
pub mod bridge;

pub use broker::{Broker, Error, LoginRequest};
