//! MCP traffic: the one proxy path every host's request takes to its server.
//!
//! - [`jsonrpc`]: what a message is (method, id, tool name), read without copying.
//! - [`metadata`]: the request metadata headers of Streamable HTTP (`Mcp-Method`, `Mcp-Name`,
//!   `MCP-Protocol-Version`) and their value encoding.
//! - [`params`]: `x-mcp-header` parameters and their `Mcp-Param-*` headers (2026-07-28).
//! - [`tools`]: `tools/list` answers rewritten for a host's tool policy.
//! - [`sse`]: Server-Sent Events framing.
//! - [`headers`]: which headers cross the proxy, in each direction.
//! - [`upstream`]: the HTTP client to remote servers.
//! - [`legacy`]: servers that speak only the HTTP+SSE transport of 2024-11-05.
//! - [`answer`]: streaming the server's answer back.
//! - [`proxy`]: the request's path through consent, token, upstream, step-up and audit.

pub mod answer;
pub mod headers;
pub mod jsonrpc;
pub mod legacy;
pub mod metadata;
pub mod params;
pub mod proxy;
pub mod sse;
pub mod tools;
pub mod upstream;

pub use proxy::{Inbound, Proxy};
