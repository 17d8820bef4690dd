//! The control socket: bound mode 0666 in a 0755 directory; each accepted connection is
//! authenticated with SO_PEERCRED before anything is read from it.

use crate::conn::{self, Conn, Peer};
use crate::Shared;
use slog::{info, warn};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::rc::Rc;

/// Open control connections allowed at once, and per uid (root is exempt from the latter), so
/// that no user can exhaust the daemon's fds.
pub const MAX_CONNECTIONS: usize = 512;
pub const MAX_CONNECTIONS_PER_UID: usize = 64;

/// Counts open connections; a `Slot` gives its place back when dropped.
#[derive(Default)]
pub struct Admission {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

pub struct Slot {
    admission: Rc<RefCell<Admission>>,
    uid: u32,
}

impl Admission {
    /// Admit a connection of `uid`, or None when a limit is reached.
    pub fn admit(this: &Rc<RefCell<Admission>>, uid: u32) -> Option<Slot> {
        let mut a = this.borrow_mut();
        let mine = a.per_uid.get(&uid).copied().unwrap_or(0);
        if a.total >= MAX_CONNECTIONS || (uid != 0 && mine >= MAX_CONNECTIONS_PER_UID) {
            return None;
        }
        a.total += 1;
        a.per_uid.insert(uid, mine + 1);
        Some(Slot { admission: this.clone(), uid })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut a = self.admission.borrow_mut();
        a.total -= 1;
        if let Some(n) = a.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                a.per_uid.remove(&self.uid);
            }
        }
    }
}

/// The socket's directory must be root's alone: in a directory others can write to, the socket
/// could be swapped for a symlink between `bind` and the chmod below (which follows it) or
/// replaced by an impostor's.
pub(crate) fn check_socket_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        let msg = format!(
            "socket directory {} must be owned by root and not writable by group or others (owner uid {}, mode {:o})",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        );
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, msg));
    }
    Ok(())
}

/// Bind the control socket, replacing a stale socket file (but not a live daemon's socket).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        check_socket_dir(dir)?;
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
    let admission = Rc::new(RefCell::new(Admission::default()));
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
        let Some(slot) = Admission::admit(&admission, peer.uid) else {
            warn!(shared.log, "too many connections; refusing one"; "peer_uid" => peer.uid);
            continue;
        };
        let conn = Conn::new(stream, peer, &shared.log);
        let shared = shared.clone();
        actix::spawn(async move {
            conn::serve(conn, shared).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_socket_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = bind(&sock).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("not writable by group or others"), "{e}");
        assert!(!sock.exists());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        bind(&sock).expect("a root-only directory is fine");
    }

    #[test]
    fn per_uid_and_total_limits() {
        let adm = Rc::new(RefCell::new(Admission::default()));
        let mine: Vec<Slot> = (0..MAX_CONNECTIONS_PER_UID).map(|_| Admission::admit(&adm, 1000).unwrap()).collect();
        assert!(Admission::admit(&adm, 1000).is_none(), "one user may not hold more");
        assert!(Admission::admit(&adm, 1001).is_some(), "others are still served");
        drop(mine);
        assert!(Admission::admit(&adm, 1000).is_some());
        let root: Vec<Slot> = (0..MAX_CONNECTIONS).filter_map(|_| Admission::admit(&adm, 0)).collect();
        assert_eq!(root.len(), MAX_CONNECTIONS, "temporaries above were dropped");
        assert!(Admission::admit(&adm, 0).is_none());
        drop(root);
        assert_eq!(adm.borrow().total, 0);
    }
}
