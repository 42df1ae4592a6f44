//! Which user is on the other end of a loopback TCP connection.
//!
//! Loopback TCP is open to every user of the machine, but on Linux the kernel knows who
//! opened each socket, and tells anyone who asks about one connection: a `sock_diag` netlink
//! request (`NETLINK_SOCK_DIAG`, the interface `ss` uses) for the connecting end, named by its
//! four addresses, answers with the socket's owner in a few µs however many sockets the
//! machine has. (Reading `/proc/net/tcp` instead walks the whole table: 2.5 ms with a hundred
//! connections open, 27 ms with 5000, on the one worker thread.) So the sign-in listener and
//! the HTTP endpoint can serve this user's programs only. Elsewhere there is no such request,
//! and every peer counts as ours (the other defences — `state`, host keys — still apply).

use std::net::SocketAddr;

/// Who opened the connecting end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A process of the user this program runs as.
    Us,
    /// A process of another user (its uid).
    Other(u32),
    /// The kernel knows no such connection (it has closed already).
    Gone,
    /// The kernel could not be asked (not Linux, or netlink refused here).
    Unknowable,
}

impl Owner {
    /// Whether to serve the connection: ours, or unknowable on this system.
    pub fn admitted(self) -> bool {
        matches!(self, Self::Us | Self::Unknowable)
    }
}

/// The owner of the connection from `peer` to our socket at `local`.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Owner {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        match diag::uid_of(local, peer) {
            Ok(Some(uid)) if uid == me => Owner::Us,
            Ok(Some(uid)) => Owner::Other(uid),
            Ok(None) => Owner::Gone,
            Err(e) => {
                tracing::debug!("cannot ask the kernel who opened a connection: {e}");
                Owner::Unknowable
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, peer);
        Owner::Unknowable
    }
}

#[cfg(target_os = "linux")]
mod diag {
    //! One `SOCK_DIAG_BY_FAMILY` request for one TCP socket (not a dump).

    use std::io;
    use std::net::SocketAddr;

    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};

    /// "Any socket cookie" (`INET_DIAG_NOCOOKIE`): the socket is found by its addresses.
    const NO_COOKIE: [u8; 8] = [0xff; 8];

    /// The uid owning the socket whose own address is `peer` and whose remote is `local`;
    /// `None` when the kernel has no such socket.
    pub fn uid_of(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
        let socket = Socket::new(NETLINK_SOCK_DIAG)?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        let request = InetRequest {
            family: if peer.is_ipv4() { AF_INET } else { AF_INET6 },
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: peer.port(),
                destination_port: local.port(),
                source_address: peer.ip(),
                destination_address: local.ip(),
                interface_id: 0,
                cookie: NO_COOKIE,
            },
        };
        let mut message = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
        message.finalize();
        let mut out = vec![0; message.buffer_len()];
        message.serialize(&mut out);
        socket.send_to(&out, &netlink_sys::SocketAddr::new(0, 0), 0)?;
        let mut answer = vec![0u8; 4096];
        let n = socket.recv(&mut &mut answer[..], 0)?;
        let reply = NetlinkMessage::<SockDiagMessage>::deserialize(&answer[..n]).map_err(|e| io::Error::other(e.to_string()))?;
        match reply.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => Ok(Some(r.header.uid)),
            NetlinkPayload::Error(e) if e.to_io().raw_os_error() == Some(libc::ENOENT) => Ok(None),
            NetlinkPayload::Error(e) => Err(e.to_io()),
            other => Err(io::Error::other(format!("sock_diag: unexpected answer {other:?}"))),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn our_own_connection_is_ours_and_a_made_up_one_is_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(owner(local, peer), Owner::Us);
        assert!(owner(local, peer).admitted());
        // Our own end of it, asked the other way round, is ours too.
        assert_eq!(owner(peer, local), Owner::Us);
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(owner(local, nobody), Owner::Gone);
        assert!(!Owner::Gone.admitted(), "a connection the kernel does not know is refused");
        assert!(!Owner::Other(65534).admitted());
        assert!(Owner::Unknowable.admitted());
    }
}
