//! mcp-broker: signs local MCP hosts in to remote OAuth-protected MCP servers, once, safely.
//!
//! The modules follow the flow:
//! [`discovery`] → [`registration`] → [`login`] → [`tokens`] → [`vault`], with [`broker`]
//! as the front door the CLI calls and [`net`] as the bounded HTTP client under all of them.

pub mod audit;
pub mod blocking;
pub mod bridge;
pub mod broker;
pub mod consent;
pub mod discovery;
pub mod login;
pub mod net;
pub mod peer;
pub mod proxy;
pub mod registration;
pub mod revocation;
pub mod service;
pub mod sse;
pub mod tokens;
pub mod vault;

pub use broker::{Broker, Error, LoginRequest};
