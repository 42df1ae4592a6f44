//! Who is calling: the hosts (AI apps and agents) that use the broker.
//!
//! - [`adopt`]: connecting a host in one step (every file it reads) and undoing it.
//! - [`connect`]: switching a host's remote entries to `mcp-broker connect`, and back.
//! - [`detect`]: the AI hosts installed here, their config files and the MCP servers they list.
//! - [`import`]: what other tools keep (mcp-remote's plaintext store), read for the broker.
//! - [`keys`]: the named keys of hosts that speak Streamable HTTP to the loopback endpoint.
//! - [`process`]: the host behind a stdio bridge, named by the bridge's parent process.

pub mod adopt;
pub mod connect;
pub mod detect;
pub mod import;
pub mod keys;
pub mod process;

pub use keys::{HostError, HostInfo, Hosts};
