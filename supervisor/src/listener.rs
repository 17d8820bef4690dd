//! The control socket: bound mode 0666 in a 0755 directory; each accepted connection is
//! authenticated with SO_PEERCRED before anything is read from it.

use crate::conn::{self, Conn, Peer};
use crate::Shared;
use slog::{info, warn};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::rc::Rc;

/// Bind the control socket, replacing a stale socket file (but not a live daemon's socket).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, "another oz-daemon is listening there"));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket")),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accept connections forever, one local task each.
pub async fn accept_loop(listener: UnixListener, shared: Rc<Shared>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            slog::crit!(shared.log, "cannot register the control socket"; "error" => %e);
            actix::System::current().stop_with_code(1);
            return;
        }
    };
    info!(shared.log, "listening"; "socket" => %shared.config.socket_path.display());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(shared.log, "accept failed"; "error" => %e);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = match stream.peer_cred() {
            Ok(c) => Peer { uid: c.uid(), gid: c.gid(), pid: c.pid() },
            Err(e) => {
                warn!(shared.log, "SO_PEERCRED failed; dropping connection"; "error" => %e);
                continue;
            }
        };
        let conn = Conn::new(stream, peer, &shared.log);
        actix::spawn(conn::serve(conn, shared.clone()));
    }
}
