//! The init's work for the agent's requests: relaunch and shell plans, pty pairs, mounts.

use crate::common::proto::{InitError, ShellRequest, Step};
use nix::errno::Errno;
use oz_sandbox::exec::{cstring, cstrings, Credentials, ExecPlan};
use oz_sandbox::rootfs::bind::{set_attrs, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
use oz_sandbox::rootfs::AsUser;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

fn nul_error(step: Step, e: oz_sandbox::exec::NulError) -> InitError {
    InitError { step, object: Some(e.what), errno: libc::EINVAL, detail: Some("contains a NUL byte".into()) }
}

/// A relaunch: the first program's credentials and confinement with a new argv/env/cwd.
pub fn relaunch_plan(
    template: &ExecPlan,
    argv: &[String],
    env: &[String],
    cwd: Option<&Path>,
) -> Result<ExecPlan, InitError> {
    let first = argv.first().ok_or_else(|| InitError {
        step: Step::Exec,
        object: None,
        errno: libc::EINVAL,
        detail: Some("empty argv".into()),
    })?;
    let mut plan = template.clone();
    plan.path = cstring(first).map_err(|e| nul_error(Step::Exec, e))?;
    plan.argv = cstrings(argv).map_err(|e| nul_error(Step::Exec, e))?;
    plan.env = cstrings(env).map_err(|e| nul_error(Step::Exec, e))?;
    if let Some(cwd) = cwd {
        let c = CString::new(cwd.as_os_str().as_encoded_bytes())
            .map_err(|_| InitError::new(Step::Chdir, None, libc::EINVAL))?;
        plan.cwds.insert(0, c);
        plan.cwds.dedup();
    }
    Ok(plan)
}

/// A shell as the requested user, with the same confinement as the program.
pub fn shell_plan(
    template: &ExecPlan,
    shell: &CString,
    profile: &str,
    req: &ShellRequest,
) -> Result<ExecPlan, InitError> {
    let mut plan = template.clone();
    plan.creds = oz_sandbox::exec::Credentials { uid: req.uid, gid: req.gid, groups: req.groups.clone() };
    plan.path = shell.clone();
    plan.argv = vec![shell.clone(), CString::new("-i").unwrap()];
    let home = req.home.to_string_lossy();
    let mut env = vec![
        format!("PATH={}", crate::common::env::SANDBOX_PATH),
        format!("HOME={home}"),
        format!("PS1=[{profile}] $ "),
        format!("TERM={}", req.term.as_deref().unwrap_or("xterm")),
    ];
    if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(req.uid)) {
        env.push(format!("USER={}", u.name));
        env.push(format!("LOGNAME={}", u.name));
    }
    plan.env = cstrings(&env).map_err(|e| nul_error(Step::Exec, e))?;
    plan.cwds = vec![cstring(&home).map_err(|e| nul_error(Step::Chdir, e))?, CString::new("/").unwrap()];
    Ok(plan)
}

/// A pty pair from the sandbox's devpts: (master, slave), the slave owned by `uid` (the shell's
/// or program's user), the window `cols` x `rows`.
pub fn open_pty(uid: u32, cols: u16, rows: u16) -> Result<(OwnedFd, OwnedFd), InitError> {
    let err = |e: Errno| InitError::new(Step::Pty, Some("/dev/ptmx".into()), e as i32);
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let m = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if m < 0 {
        return Err(err(Errno::last()));
    }
    // SAFETY: a fresh descriptor we own.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: unlockpt/ptsname_r on our master; the name buffer is ours.
    let mut name = [0 as libc::c_char; 64];
    unsafe {
        Errno::result(libc::unlockpt(master.as_raw_fd())).map_err(err)?;
        Errno::result(libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len())).map_err(err)?;
    }
    // SAFETY: ptsname_r NUL-terminated the buffer.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    // SAFETY: open(2) of the slave path.
    let s = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if s < 0 {
        return Err(err(Errno::last()));
    }
    // SAFETY: a fresh descriptor we own.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    nix::unistd::fchown(slave.as_raw_fd(), Some(nix::unistd::Uid::from_raw(uid)), None).map_err(err)?;
    nix::sys::stat::fchmod(slave.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(0o620)).map_err(err)?;
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map_err(err)?;
    Ok((master, slave))
}

/// Open `dir/name` as an O_PATH directory without following a symlink.
fn open_dir_nofollow(dir: &OwnedFd, name: &CString) -> Result<OwnedFd, Errno> {
    // SAFETY: openat(2) relative to a descriptor we own.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a fresh descriptor we own.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The components of an absolute `target` without `.`/`..`: (parent names, last name).
fn split_target(target: &Path) -> Result<(Vec<CString>, CString), Errno> {
    let mut names = Vec::new();
    for c in target.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(CString::new(n.as_encoded_bytes()).map_err(|_| Errno::EINVAL)?),
            _ => return Err(Errno::EINVAL),
        }
    }
    let last = names.pop().ok_or(Errno::EINVAL)?;
    Ok((names, last))
}

fn open_root() -> Result<OwnedFd, Errno> {
    let root = CString::new("/").unwrap();
    // SAFETY: open(2) of "/".
    let fd = unsafe { libc::open(root.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor we own.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Paths a `Mount` created, deepest last, with whether each is a directory: removed again by
/// the matching `Umount`.
pub type Created = Vec<(PathBuf, bool)>;

/// What one `Mount` put into the sandbox: the id of the attached mount (checked before it is
/// unmounted) and the placeholders created for it.
#[derive(Debug)]
pub struct Injected {
    pub mnt_id: u64,
    pub created: Created,
}

/// This thread's filesystem credentials become the sandbox user's for the scope: the mount
/// targets lie in trees the user can write (their home, folders bound from the host), so what
/// is created there belongs to the user and no symlink the user plants lends root's rights.
fn as_user(creds: &Credentials) -> Result<AsUser, Errno> {
    AsUser::enter_ids(creds.uid, creds.gid, &creds.groups)
}

/// Create the placeholder for a mount at `target` (directories as needed, then an empty
/// directory or file), never following a symlink, with the user's credentials. Returns the
/// parent dir fd, the last name, and what was created.
fn placeholder(target: &Path, is_dir: bool, creds: &Credentials) -> Result<(OwnedFd, CString, Created), Errno> {
    let (names, last) = split_target(target)?;
    let mut dir = open_root()?;
    let mut created = Created::new();
    let mut path = PathBuf::from("/");
    let _user = as_user(creds)?;
    for name in &names {
        path.push(std::ffi::OsStr::from_bytes(name.as_bytes()));
        // SAFETY: mkdirat relative to a descriptor we own.
        let r = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
        match r {
            0 => created.push((path.clone(), true)),
            _ if Errno::last() == Errno::EEXIST => {}
            _ => return Err(Errno::last()),
        }
        dir = open_dir_nofollow(&dir, name)?;
    }
    // SAFETY: mkdirat/mknodat relative to a descriptor we own.
    let r = unsafe {
        if is_dir {
            libc::mkdirat(dir.as_raw_fd(), last.as_ptr(), 0o755)
        } else {
            libc::mknodat(dir.as_raw_fd(), last.as_ptr(), libc::S_IFREG | 0o644, 0)
        }
    };
    match r {
        0 => created.push((target.to_path_buf(), is_dir)),
        _ if Errno::last() == Errno::EEXIST => {}
        _ => return Err(Errno::last()),
    }
    Ok((dir, last, created))
}

/// Remove what a `Mount` created (deepest first), never following a symlink, with the user's
/// credentials; best effort (a directory the user filled stays).
pub fn remove_created(created: &Created, creds: &Credentials) {
    let Ok(_user) = as_user(creds) else { return };
    for (path, is_dir) in created.iter().rev() {
        let Ok((names, last)) = split_target(path) else { continue };
        let dir = names.iter().try_fold(
            match open_root() {
                Ok(d) => d,
                Err(_) => continue,
            },
            |d, n| open_dir_nofollow(&d, n),
        );
        if let Ok(dir) = dir {
            // SAFETY: unlinkat relative to a descriptor we own; the last component is never
            // followed.
            unsafe { libc::unlinkat(dir.as_raw_fd(), last.as_ptr(), if *is_dir { libc::AT_REMOVEDIR } else { 0 }) };
        }
    }
}

/// The id of the mount `fd` is on (`statx` `STATX_MNT_ID`).
fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    // SAFETY: statx is plain data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx of the object `fd` refers to (empty path) into our buffer.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    Errno::result(r)?;
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(stx.stx_mnt_id)
}

const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// The attributes of an injected mount: nosuid and nodev always; read-only, or else noexec
/// like every writable mount of the sandbox.
pub fn mount_attrs(read_only: bool) -> u64 {
    ATTR_NOSUID | ATTR_NODEV | if read_only { ATTR_RDONLY } else { ATTR_NOEXEC }
}

/// Attach the detached mount `fds[0]` at `target` (see [`mount_attrs`]); placeholders are
/// created with the user's credentials `creds`. Returns the new mount's id and the
/// placeholders it created.
pub fn mount(fds: Vec<OwnedFd>, target: &Path, read_only: bool, creds: &Credentials) -> Result<Injected, InitError> {
    let object = Some(target.display().to_string());
    let err = |e: Errno| InitError::new(Step::Mount, object.clone(), e as i32);
    let [mnt]: [OwnedFd; 1] = fds.try_into().map_err(|_| err(Errno::EBADF))?;
    let st = nix::sys::stat::fstat(mnt.as_raw_fd()).map_err(err)?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    set_attrs(mnt.as_fd(), mount_attrs(read_only), true).map_err(|f| err(f.errno))?;
    let (dir, name, created) = placeholder(target, is_dir, creds).map_err(err)?;
    // SAFETY: move_mount from our detached mount fd to dir/name (the last component is not
    // followed without MOVE_MOUNT_T_SYMLINKS).
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if let Err(e) = Errno::result(r) {
        remove_created(&created, creds);
        return Err(err(e));
    }
    // The fd now refers to the attached mount. Without its id it could never be unmounted
    // safely: take it down again.
    match mount_id(mnt.as_fd()) {
        Ok(mnt_id) => Ok(Injected { mnt_id, created }),
        Err(e) => {
            let _ = umount_fd(mnt.as_fd());
            remove_created(&created, creds);
            Err(err(e))
        }
    }
}

/// Detach the mount whose root `fd` refers to (the magic link names exactly that mount).
fn umount_fd(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::umount2(path.as_str(), nix::mount::MntFlags::MNT_DETACH)
}

/// Detach the mount `Mount` attached at `target`: the path is walked from `/` without following
/// any symlink, and the mount found there must be the one recorded in `injected`; anything else
/// (a component swapped for a symlink, another mount) is refused and nothing is unmounted.
pub fn umount(target: &Path, injected: &Injected) -> Result<(), InitError> {
    let err = |e: Errno, detail: Option<&str>| InitError {
        step: Step::Umount,
        object: Some(target.display().to_string()),
        errno: e as i32,
        detail: detail.map(str::to_string),
    };
    let (names, last) = split_target(target).map_err(|e| err(e, None))?;
    let walk = |e: Errno| err(e, Some("a component is not a directory (symlinks are not followed)"));
    let dir = names.iter().try_fold(open_root().map_err(walk)?, |d, n| open_dir_nofollow(&d, n)).map_err(walk)?;
    // SAFETY: openat(2) relative to a descriptor we own; the last component is not followed.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), last.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor we own.
    let fd = Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).map_err(|e| err(e, None))?;
    let id = mount_id(fd.as_fd()).map_err(|e| err(e, None))?;
    if id != injected.mnt_id {
        return Err(err(Errno::EINVAL, Some("not the mount oz mount made there")));
    }
    umount_fd(fd.as_fd()).map_err(|e| err(e, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_mounts_are_nosuid_nodev_and_noexec_unless_read_only() {
        assert_eq!(mount_attrs(false), ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC);
        assert_eq!(mount_attrs(true), ATTR_NOSUID | ATTR_NODEV | ATTR_RDONLY);
    }
}
