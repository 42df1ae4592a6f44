//! The bridge's stdin and stdout. Hosts hand a child a pipe (Python's asyncio) or a Unix
//! socket pair (Node's child_process) for each: those are read and written non-blocking on
//! the bridge's own thread, through the runtime's epoll. Anything else (a terminal, a file)
//! goes through tokio's standard handles, which use a helper thread per read and write.

use tokio::io::{AsyncRead, AsyncWrite};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

#[cfg(unix)]
pub use unix::{stdin, stdout, Restore};

/// Nothing to put back where standard streams are never made non-blocking.
#[cfg(not(unix))]
pub struct Restore;

#[cfg(not(unix))]
impl Restore {
    pub fn capture() -> Self {
        Self
    }
}

#[cfg(not(unix))]
pub fn stdin() -> Reader {
    Box::new(tokio::io::stdin())
}

#[cfg(not(unix))]
pub fn stdout() -> Writer {
    Box::new(tokio::io::stdout())
}

#[cfg(unix)]
mod unix {
    use std::fs::{File, Metadata};
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::{Reader, Writer};

    /// The status flags of stdin and stdout as the bridge found them, set back on drop: the
    /// non-blocking mode lives on the open file, which a shell may share with other programs
    /// (`(mcp-broker connect x; other) | cat`), and must not outlive the bridge.
    pub struct Restore(Vec<(std::os::fd::RawFd, libc::c_int)>);

    impl Restore {
        pub fn capture() -> Self {
            // SAFETY: F_GETFL on fds 0 and 1 reads flags only; a closed fd gives -1, skipped.
            let flags = [0, 1].into_iter().map(|fd| (fd, unsafe { libc::fcntl(fd, libc::F_GETFL) }));
            Self(flags.filter(|(_, f)| *f >= 0).collect())
        }
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            for (fd, flags) in &self.0 {
                // SAFETY: F_SETFL with flags read from the same fd at start.
                unsafe { libc::fcntl(*fd, libc::F_SETFL, *flags) };
            }
        }
    }

    /// What kind of file a standard stream is.
    enum Kind {
        Fifo(OwnedFd),
        Socket(OwnedFd),
        Other,
    }

    /// A duplicate of `fd` (it shares the file's status flags with the original, so making it
    /// non-blocking makes the stream non-blocking) and what kind of file it is.
    fn dup(fd: BorrowedFd<'_>) -> Option<(File, Metadata)> {
        let file = File::from(fd.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        Some((file, meta))
    }

    fn kind(fd: BorrowedFd<'_>) -> Kind {
        match dup(fd) {
            Some((file, meta)) if meta.file_type().is_fifo() => Kind::Fifo(file.into()),
            Some((file, meta)) if meta.file_type().is_socket() => Kind::Socket(file.into()),
            _ => Kind::Other,
        }
    }

    /// A Unix socket from a duplicated descriptor, registered with the runtime.
    fn socket(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
        let s = std::os::unix::net::UnixStream::from(fd);
        s.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(s)
    }

    /// Standard input, non-blocking when it can be.
    pub fn stdin() -> Reader {
        let r: Option<Reader> = match kind(std::io::stdin().as_fd()) {
            Kind::Fifo(fd) => tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                .ok()
                .map(|r| Box::new(r) as Reader),
            Kind::Socket(fd) => socket(fd).ok().map(|s| Box::new(s) as Reader),
            Kind::Other => None,
        };
        r.unwrap_or_else(|| Box::new(tokio::io::stdin()))
    }

    /// Whether stdout and stderr are the same file (`2>&1`): non-blocking mode would then
    /// reach stderr too, where a log line could be lost to `EAGAIN`.
    fn stdout_is_stderr() -> bool {
        match (dup(std::io::stdout().as_fd()), dup(std::io::stderr().as_fd())) {
            (Some((_, a)), Some((_, b))) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Standard output, non-blocking when it can be.
    pub fn stdout() -> Writer {
        if stdout_is_stderr() {
            return Box::new(tokio::io::stdout());
        }
        let w: Option<Writer> = match kind(std::io::stdout().as_fd()) {
            Kind::Fifo(fd) => tokio::net::unix::pipe::Sender::from_owned_fd(fd)
                .ok()
                .map(|w| Box::new(w) as Writer),
            Kind::Socket(fd) => socket(fd).ok().map(|s| Box::new(s) as Writer),
            Kind::Other => None,
        };
        w.unwrap_or_else(|| Box::new(tokio::io::stdout()))
    }
}
