//! The `xephyr` backend: Xephyr runs on the host as the user, a nested window on the user's
//! display. It listens only on its path socket (`-nolisten tcp -nolisten local`: no TCP, no
//! abstract socket any network namespace could reach), accepts only holders of the sandbox's
//! cookie (`-auth`), and reports its display number on `-displayfd` once it accepts clients.
//! The sandbox gets that one socket bound in, nothing else of the host's X.

use super::hostproc::{self, HostCommand};
use super::{ReadyError, X11Error};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oz_sandbox::user::UserInfo;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long Xephyr may take to accept clients.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The nested screen.
const SCREEN: &str = "1024x768";

/// What the host side needs to start Xephyr.
pub struct Params<'a> {
    pub user: &'a UserInfo,
    pub profile: &'a str,
    /// The caller's DISPLAY and XAUTHORITY.
    pub display: &'a str,
    pub xauthority: Option<&'a str>,
    /// The cookie file Xephyr checks clients against.
    pub auth_file: &'a Path,
    pub output: Option<OwnedFd>,
    pub etc_prefix: &'a Path,
}

/// The socket of display `n` on the host.
pub fn socket_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{n}"))
}

/// The display numbers tried for sandbox `id`: a different one per sandbox (a display number
/// freed by an ending Xephyr is not reused at once: an X server removes its lock before its
/// socket), then the next ones.
fn candidates(id: u64) -> impl Iterator<Item = u32> {
    let first = 100 + (id % 800) as u32;
    (0..TRIES).map(move |i| 100 + (first - 100 + i * 7) % 800)
}

/// How many display numbers are tried.
const TRIES: u32 = 4;

/// Start Xephyr and wait until it accepts clients; returns it and its display number.
pub fn start(p: &Params<'_>, id: u64) -> Result<(Child, u32), X11Error> {
    let mut last = None;
    for n in candidates(id) {
        if Path::new(&format!("/tmp/.X{n}-lock")).exists() || socket_path(n).exists() {
            continue;
        }
        match start_on(p, n) {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(X11Error::Start { program: "Xephyr", detail: "no free display number".into() }))
}

fn start_on(p: &Params<'_>, n: u32) -> Result<(Child, u32), X11Error> {
    let exe =
        hostproc::find_program("Xephyr").ok_or(X11Error::Missing { program: "Xephyr", package: "xserver-xephyr" })?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| X11Error::Sys { op: "pipe", errno: e })?;
    let args = [
        &format!(":{n}"),
        "-displayfd",
        "3",
        "-nolisten",
        "tcp",
        "-nolisten",
        "local",
        // No server reset when the last client disconnects: a client that looks at the display
        // before the program connects would otherwise make the program's connection fail.
        "-noreset",
        "-auth",
        &p.auth_file.to_string_lossy(),
        "-screen",
        SCREEN,
        "-resizeable",
        "-title",
        &format!("[oz] {}", p.profile),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cmd = HostCommand {
        exe,
        args,
        env: hostproc::base_env(p.user, p.display, p.xauthority),
        output: p
            .output
            .as_ref()
            .map(|f| f.try_clone())
            .transpose()
            .map_err(|e| X11Error::Spawn { program: "Xephyr", source: e })?,
        fd3: Some(ready_w),
    };
    let mut child = hostproc::spawn(p.user, cmd, hostproc::default_filter(p.etc_prefix))
        .map_err(|e| X11Error::Spawn { program: "Xephyr", source: e })?;
    let ready = read_display(ready_r.as_fd()).and_then(|got| match got == n {
        true => Ok(n),
        false => Err(ReadyError::WrongDisplay { got, asked: n }),
    });
    match ready {
        Ok(n) => match check_socket(p.user, n) {
            Ok(()) => Ok((child, n)),
            Err(e) => {
                hostproc::stop(&mut child, Duration::from_secs(1));
                Err(e)
            }
        },
        Err(error) => {
            hostproc::stop(&mut child, Duration::from_millis(200));
            let status = hostproc::try_reap(&mut child).unwrap_or_default();
            let output = if status.is_empty() { String::new() } else { format!(" ({status})") };
            Err(X11Error::NotReady { program: "Xephyr", error, output })
        }
    }
}

/// The display number Xephyr writes on `-displayfd` (its write end closed in the agent).
fn read_display(fd: std::os::fd::BorrowedFd<'_>) -> Result<u32, ReadyError> {
    let until = Instant::now() + READY_TIMEOUT;
    let mut buf = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadyError::TimedOut { secs: READY_TIMEOUT.as_secs() });
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(left.as_millis().min(60_000) as u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(errno) => return Err(ReadyError::Sys { op: "poll", errno }),
        }
        let mut chunk = [0u8; 32];
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut chunk) {
            Ok(0) => return Err(ReadyError::Exited),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(ReadyError::Sys { op: "read display number", errno }),
        }
        if buf.contains(&b'\n') || buf.len() > 16 {
            let text = String::from_utf8_lossy(&buf);
            return text.trim().parse().map_err(|_| ReadyError::BadDisplay { text: text.to_string() });
        }
    }
}

/// Remove what a killed Xephyr of `user` on display `n` left: its socket in /tmp/.X11-unix and
/// its lock file in /tmp, each only when it is the user's (a socket, a regular file). Both
/// directories must be root's and sticky, so no other user can have put anything in their place.
pub fn remove_leftovers(user: &UserInfo, n: u32) {
    remove_owned("/tmp/.X11-unix", &format!("X{n}"), user.uid, libc::S_IFSOCK);
    remove_owned("/tmp", &format!(".X{n}-lock"), user.uid, libc::S_IFREG);
}

fn remove_owned(dir: &str, name: &str, uid: u32, kind: libc::mode_t) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (Ok(d), Ok(n)) = (std::ffi::CString::new(dir), std::ffi::CString::new(name)) else { return };
    // SAFETY: open of a NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(d.as_ptr(), libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_RDONLY) };
    if fd < 0 {
        return;
    }
    // SAFETY: a fresh descriptor from the kernel.
    let dirfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat of a valid descriptor into room for one stat.
    if unsafe { libc::fstat(dirfd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return;
    }
    // SAFETY: fstat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    if st.st_uid != 0 || st.st_mode & libc::S_ISVTX == 0 {
        return;
    }
    let mut est = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat of a plain name below a valid dirfd, not following a symlink.
    if unsafe { libc::fstatat(dirfd.as_raw_fd(), n.as_ptr(), est.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return;
    }
    // SAFETY: fstatat succeeded and filled it.
    let est = unsafe { est.assume_init() };
    if est.st_uid == uid && est.st_mode & libc::S_IFMT == kind {
        // SAFETY: unlinkat of a plain name below a valid dirfd.
        unsafe { libc::unlinkat(dirfd.as_raw_fd(), n.as_ptr(), 0) };
    }
}

/// The socket of display `n` must be a socket owned by the user (Xephyr's, not a squatter's).
fn check_socket(user: &UserInfo, n: u32) -> Result<(), X11Error> {
    let path = socket_path(n);
    let m = std::fs::symlink_metadata(&path)
        .map_err(|e| X11Error::Start { program: "Xephyr", detail: format!("{}: {e}", path.display()) })?;
    if !m.file_type().is_socket() || m.uid() != user.uid {
        return Err(X11Error::Start {
            program: "Xephyr",
            detail: format!("{}: not a socket of {}", path.display(), user.name),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn display_candidates_differ_per_sandbox_and_stay_in_range() {
        let a: Vec<u32> = super::candidates(1).collect();
        let b: Vec<u32> = super::candidates(2).collect();
        assert_eq!(a.len(), super::TRIES as usize);
        assert_ne!(a[0], b[0]);
        assert!(super::candidates(799).chain(super::candidates(u64::MAX)).all(|n| (100..900).contains(&n)));
    }
}
