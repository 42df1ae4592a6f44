//! The control socket's file: a Unix socket only this user can open. Its file mode is the
//! control API's authentication.

use std::io;
use std::path::Path;

use tokio::net::UnixListener;

/// Bind a Unix socket at `path`, readable and writable by this user only. A socket file left
/// by a dead service is replaced (the caller's instance lock proves nobody serves it).
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    // sun_path holds 108 bytes with its NUL on Linux (104 on macOS).
    if path.as_os_str().len() > 103 {
        return Err(io::Error::other("the socket path is too long; use a shorter MCP_BROKER_HOME"));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}
