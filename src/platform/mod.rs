//! What differs between operating systems, in one place: who is at the other end of a
//! loopback connection ([`peer`]), the service's process hardening and limits
//! ([`process`]), the control socket's file ([`socket`]) and which programs run
//! ([`programs`]). The day macOS and Windows are
//! built, this is the module that changes.

pub mod peer;
pub mod process;
pub mod programs;
pub mod socket;
