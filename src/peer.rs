//! Which user is on the other end of a loopback TCP connection.
//!
//! Loopback TCP is open to every user of the machine, but on Linux the kernel knows who
//! opened each socket: its socket table (`/proc/net/tcp`, read with the `procfs` crate) lists
//! the owner of the connecting end, so the sign-in listener and the HTTP endpoint can serve
//! this user's programs only. Elsewhere no such table is at hand, and every peer counts as
//! ours (the other defences — `state`, host keys — still apply).

use std::net::SocketAddr;

/// Who opened the connecting end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A process of the user this program runs as.
    Us,
    /// A process of another user (its uid).
    Other(u32),
    /// Not known: no socket table on this system, or the connection is already gone.
    Unknown,
}

impl Owner {
    /// Whether to serve the connection: ours, or unknowable on this system. A connection
    /// missing from a readable table is refused (it is closed, or not what it claims).
    pub fn admitted(self) -> bool {
        self == Self::Us || (self == Self::Unknown && !table_readable())
    }
}

/// The owner of the connection from `peer` to our socket at `local`.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Owner {
    #[cfg(target_os = "linux")]
    {
        // The connecting end's row: its own address first, ours as its remote.
        let table = match (local, peer) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => procfs::net::tcp(),
            _ => procfs::net::tcp6(),
        };
        let Ok(rows) = table else { return Owner::Unknown };
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        match rows.iter().find(|r| r.local_address == peer && r.remote_address == local) {
            Some(row) if row.uid == me => Owner::Us,
            Some(row) => Owner::Other(row.uid),
            None => Owner::Unknown,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, peer);
        Owner::Unknown
    }
}

/// Whether this system has a socket table to ask.
fn table_readable() -> bool {
    cfg!(target_os = "linux") && std::path::Path::new("/proc/net/tcp").exists()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn our_own_connection_is_ours_and_a_made_up_one_is_unknown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(owner(local, peer), Owner::Us);
        assert!(owner(local, peer).admitted());
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(owner(local, nobody), Owner::Unknown);
        assert!(!Owner::Unknown.admitted(), "a connection missing from a readable table is refused");
        assert!(!Owner::Other(65534).admitted());
    }
}
