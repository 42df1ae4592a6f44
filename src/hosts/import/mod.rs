//! Taking what other tools keep about the user's servers into the broker, so that switching
//! needs no new sign-in and leaves no plaintext behind.
//!
//! - [`mcp_remote`]: mcp-remote's plaintext store (`~/.mcp-auth`): its client registrations
//!   and tokens, each matched to the server URL it belongs to.
//!
//! Everything here only reads (and, when asked, deletes what was imported); storing is the
//! [`crate::broker`]'s job (`Broker::import`).

pub mod mcp_remote;
