//! OAuth 2.1 as an MCP client does it, one step a module, in the order a sign-in takes them:
//!
//! 1. [`discovery`]: from the server's URL to its validated authorization server (RFC 9728
//!    protected resource metadata, RFC 8414 / OpenID discovery, canonical resource URIs).
//! 2. [`client`]: an OAuth client at one issuer (its id, secret, endpoints);
//!    [`registration`]: a client id there (pre-registered, Client ID Metadata Document, or
//!    RFC 7591 dynamic registration, in the MCP spec's priority order).
//! 3. [`login`]: authorization code + PKCE S256 through a browser and a loopback redirect;
//!    [`device`]: or a code the user enters on any device (RFC 8628).
//! 4. [`tokens`]: what the token endpoint issued, and when to refresh it; [`refresh`]: doing so.
//! 5. [`revocation`]: RFC 7009 sign-out.
//!
//! [`quirks`]: the per-server settings for authorization servers that depart from the
//! textbook, used by each of these steps.
//!
//! Nothing here stores anything: the [`crate::broker`] decides what is kept.

pub mod client;
pub mod device;
pub mod discovery;
pub mod login;
pub mod quirks;
pub mod refresh;
pub mod registration;
pub mod revocation;
pub mod tokens;
