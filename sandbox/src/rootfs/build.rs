//! Building the planned tree, in the init child: a list of named steps, top to bottom.
//!
//! Every path inside the new root is resolved relative to the new root's fd with
//! RESOLVE_IN_ROOT (symlinks and `..` stay inside), and every mount is attached to an fd.
//! Mount points in directories the user owns, or in trees bound from the host, are created with
//! the user's credentials; root creates only in tmpfs directories it owns.

use super::bind::{self, FsOption, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
use super::pathsafe::{self, AsUser};
use super::plan::{ResolvConf, RootfsPlan, SystemKind};
use super::{blacklist, dev, proc, whitelist, RootfsError};
use nix::errno::Errno;
use std::collections::HashSet;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What `build` skipped or adjusted, for the sandbox log.
#[derive(Debug, Default, Clone)]
pub struct BuildReport {
    pub warnings: Vec<String>,
    /// Expected non-events (missing blacklist paths, ...).
    pub debug: Vec<String>,
}

/// Build the root filesystem described by `plan` and pivot into it. Must run in a new mount
/// namespace, as root with all capabilities, single-threaded; mounts /proc for the current PID
/// namespace. Afterwards the cwd is `/` of the new root and the host tree is gone.
pub fn build(plan: &RootfsPlan) -> Result<BuildReport, RootfsError> {
    build_with(plan, Deferred::default())
}

/// What the agent hands over while the init builds (see [`build_with`]).
#[derive(Default)]
pub struct Deferred<'a> {
    /// Called before /proc and /sys are mounted (whether they are or not): the network
    /// namespace must be final by then, as sysfs shows the mounter's network devices.
    pub before_sysproc: Option<&'a mut dyn FnMut() -> Result<(), RootfsError>>,
    /// The blacklist, taken just before it is applied instead of from the plan.
    pub blacklist: Option<&'a mut dyn FnMut() -> Result<Vec<PathBuf>, RootfsError>>,
}

/// As [`build`], with what `later` provides while the agent prepares it.
pub fn build_with(plan: &RootfsPlan, later: Deferred<'_>) -> Result<BuildReport, RootfsError> {
    make_host_tree_private()?;
    let mut b = Builder::new(plan)?;
    b.bind_system()?;
    b.write_etc()?;
    b.mount_tmp_and_run()?;
    b.create_skeleton()?;
    dev::mount_dev(&mut b)?;
    b.mount_home()?;
    for item in &plan.binds {
        whitelist::apply(&mut b, item)?;
    }
    b.create_links()?;
    if let Some(before) = later.before_sysproc {
        before()?;
    }
    if plan.sysproc {
        proc::mount_proc(&mut b)?;
        proc::mount_sys(&mut b)?;
    }
    match later.blacklist {
        Some(get) => blacklist::apply(&mut b, &get()?)?,
        None => blacklist::apply(&mut b, &plan.blacklist)?,
    }
    b.write_sandbox_marker()?;
    let report = b.pivot()?;
    seal_root()?;
    Ok(report)
}

/// Step 1: nothing done in this namespace may propagate back to the host.
fn make_host_tree_private() -> Result<(), RootfsError> {
    use nix::mount::{mount, MsFlags};
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|errno| RootfsError::Sys { what: "make / private", errno })
}

/// Last step: the root tmpfs itself becomes read-only (its writable parts are their own mounts).
fn seal_root() -> Result<(), RootfsError> {
    let root = host_open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)?;
    bind::set_attrs(root.as_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC, false)
        .map_err(|failure| RootfsError::Mount { fstype: "tmpfs", target: "/".into(), failure })
}

/// Open a root-controlled host path as root (system directories, device nodes, config paths).
pub fn host_open(path: &Path, flags: libc::c_int) -> Result<OwnedFd, RootfsError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| RootfsError::fs("open", path, Errno::EINVAL))?;
    // SAFETY: open with a NUL-terminated path; the fd is new and owned below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(RootfsError::fs("open", path, Errno::last()));
    }
    // SAFETY: fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// State of one build: the new root and the helpers every step uses.
pub struct Builder<'a> {
    pub plan: &'a RootfsPlan,
    root: OwnedFd,
    empty_dir: OwnedFd,
    empty_file: OwnedFd,
    /// st_dev of the tmpfs mounts this build made (root creates mount points only there).
    ours: Vec<u64>,
    /// Directories this build created as parents, not yet covered by a mount.
    pub created: HashSet<PathBuf>,
    pub report: BuildReport,
}

impl<'a> Builder<'a> {
    /// Step 2: a 0700 staging tmpfs over `sandbox_path` (this namespace only) holding the
    /// placeholders and the new root tmpfs.
    fn new(plan: &'a RootfsPlan) -> Result<Self, RootfsError> {
        let staging_path = &plan.staging;
        std::fs::create_dir_all(staging_path).map_err(|e| RootfsError::fs("mkdir", staging_path, io_errno(&e)))?;
        let at = host_open(staging_path, libc::O_PATH | libc::O_DIRECTORY)?;
        let tmpfs = new_tmpfs(&[FsOption::Str("mode", "0700")], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC, staging_path)?;
        bind::attach(tmpfs.as_fd(), at.as_fd()).map_err(|failure| RootfsError::Mount {
            fstype: "tmpfs",
            target: staging_path.clone(),
            failure,
        })?;
        let staging = host_open(staging_path, libc::O_PATH | libc::O_DIRECTORY)?;
        let sfd = staging.as_fd();
        for (name, dir) in [("root", true), ("empty.dir", true), ("empty.file", false)] {
            let mode = if name == "root" { 0o755 } else { 0 };
            create_at(sfd, Path::new(name), dir, mode)
                .map_err(|e| RootfsError::fs("create", staging_path.join(name), e))?;
        }
        let root_path = staging_path.join("root");
        let root_mnt = new_tmpfs(&[FsOption::Str("mode", "0755")], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC, &root_path)?;
        let mount_point = reopen(sfd, "root", staging_path)?;
        bind::attach(root_mnt.as_fd(), mount_point.as_fd()).map_err(|failure| RootfsError::Mount {
            fstype: "tmpfs",
            target: root_path.clone(),
            failure,
        })?;
        let root = reopen(sfd, "root", staging_path)?;
        let root_dev = pathsafe::fstat(root.as_fd()).map_err(|e| RootfsError::fs("stat", &root_path, e))?.st_dev;
        Ok(Builder {
            plan,
            empty_dir: placeholder(sfd, "empty.dir", staging_path)?,
            empty_file: placeholder(sfd, "empty.file", staging_path)?,
            root,
            ours: vec![root_dev],
            created: HashSet::new(),
            report: BuildReport::default(),
        })
    }

    /// Step 3: /usr, /bin, /lib... and the etc_includes, read-only; symlinks recreated.
    fn bind_system(&mut self) -> Result<(), RootfsError> {
        self.ensure_dir(Path::new("/etc"))?;
        for entry in &self.plan.system {
            match &entry.kind {
                SystemKind::Symlink(text) => self.symlink(&entry.path, text)?,
                SystemKind::Bind => {
                    let src = match host_open(&entry.path, libc::O_PATH) {
                        Ok(fd) => fd,
                        Err(RootfsError::Fs { errno: Errno::ENOENT, .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    self.bind_new(src.as_fd(), &entry.path, &entry.path, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV)?;
                }
            }
        }
        Ok(())
    }

    /// Step 4: generated /etc files, and the host's resolv.conf for bridge/host networking.
    fn write_etc(&mut self) -> Result<(), RootfsError> {
        let etc = &self.plan.etc;
        self.write_file(Path::new("/etc/hostname"), etc.hostname.as_bytes(), 0o644)?;
        self.write_file(Path::new("/etc/hosts"), etc.hosts.as_bytes(), 0o644)?;
        self.write_file(Path::new("/etc/machine-id"), etc.machine_id.as_bytes(), 0o444)?;
        self.write_file(Path::new("/etc/fstab"), b"", 0o644)?;
        self.symlink(Path::new("/etc/mtab"), Path::new("/proc/self/mounts"))?;
        if let ResolvConf::Text(text) = &etc.resolv_conf {
            let text = text.clone();
            self.write_file(Path::new("/etc/resolv.conf"), text.as_bytes(), 0o644)?;
        }
        if etc.resolv_conf == ResolvConf::Host {
            match host_open(Path::new("/etc/resolv.conf"), libc::O_PATH) {
                Ok(src) => self.bind_new(
                    src.as_fd(),
                    Path::new("/etc/resolv.conf"),
                    Path::new("/etc/resolv.conf"),
                    ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
                )?,
                Err(e) => self.report.warnings.push(format!("{e}: the sandbox has no resolv.conf")),
            }
        }
        Ok(())
    }

    /// Step 5: private /tmp (1777, sticky) and /run (root 0755, so /run/oz-sandbox stays) with
    /// the user's runtime directory.
    fn mount_tmp_and_run(&mut self) -> Result<(), RootfsError> {
        let w = ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;
        self.mount_tmpfs(Path::new("/tmp"), &[FsOption::Str("mode", "1777")], w)?;
        self.mount_tmpfs(Path::new("/run"), &[FsOption::Str("mode", "0755")], w)?;
        let user = &self.plan.user;
        self.make_dir(Path::new("/run/lock"), 0o1777, 0, 0)?;
        self.make_dir(Path::new("/run/user"), 0o755, 0, 0)?;
        self.make_dir(&PathBuf::from(format!("/run/user/{}", user.uid)), 0o700, user.uid, user.gid)?;
        Ok(())
    }

    /// Step 6: the rest of the usual tree and the original's compatibility symlinks.
    fn create_skeleton(&mut self) -> Result<(), RootfsError> {
        for d in ["/var/lib/dbus", "/var/cache", "/opt", "/mnt", "/media", "/srv"] {
            self.ensure_dir(Path::new(d))?;
        }
        for (link, target) in [
            ("/var/tmp", "/tmp"),
            ("/var/run", "/run"),
            ("/var/lock", "/run/lock"),
            ("/run/shm", "/dev/shm"),
            ("/var/lib/dbus/machine-id", "/etc/machine-id"),
        ] {
            self.symlink(Path::new(link), Path::new(target))?;
        }
        Ok(())
    }

    /// Step 8: the user's home is an empty tmpfs owned by the user (0700).
    fn mount_home(&mut self) -> Result<(), RootfsError> {
        let user = &self.plan.user;
        let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
        let opts = [FsOption::Str("mode", "0700"), FsOption::Str("uid", &uid), FsOption::Str("gid", &gid)];
        let home = user.home.clone();
        self.mount_tmpfs(&home, &opts, ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)?;
        self.created.insert(home);
        Ok(())
    }

    /// Step 10: whitelist `symlink` keys and shared-folder links.
    fn create_links(&mut self) -> Result<(), RootfsError> {
        for l in &self.plan.links {
            match self.open(&l.link, libc::O_PATH | libc::O_NOFOLLOW) {
                Ok(_) => self.report.warnings.push(format!("symlink {}: exists, skipped", l.link.display())),
                Err(_) => self.symlink(&l.link, &l.target)?,
            }
        }
        Ok(())
    }

    /// Step 12: `/run/oz-sandbox` (the profile name, root 0444) lets `oz` refuse to run inside.
    /// It lives in the root-owned /run, a place no host user can create it in either.
    fn write_sandbox_marker(&mut self) -> Result<(), RootfsError> {
        self.write_file(Path::new("/run/oz-sandbox"), format!("{}\n", self.plan.name).as_bytes(), 0o444)
    }

    /// Step 13: pivot_root into the new root, detach the old one (and the staging tmpfs).
    fn pivot(self) -> Result<BuildReport, RootfsError> {
        let sys = |what| move |errno| RootfsError::Sys { what, errno };
        nix::unistd::fchdir(self.root.as_raw_fd()).map_err(sys("chdir to the new root"))?;
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root"))?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(sys("detach the old root"))?;
        nix::unistd::chdir("/").map_err(sys("chdir /"))?;
        Ok(self.report)
    }

    // ---- helpers used by the steps (and by dev, proc, whitelist, blacklist) ----

    /// Open a sandbox path inside the new root.
    pub fn open(&self, path: &Path, flags: libc::c_int) -> Result<OwnedFd, Errno> {
        pathsafe::open_in_root(self.root.as_fd(), path, flags)
    }

    /// Whether root may create entries in `dir`: only in root-owned directories of our tmpfs.
    fn root_creates_in(&self, dir: BorrowedFd<'_>) -> bool {
        pathsafe::fstat(dir).map(|st| st.st_uid == 0 && self.ours.contains(&st.st_dev)).unwrap_or(false)
    }

    /// Create `name` in `dir` (a directory or an empty file), as root or as the user.
    fn create_in(&mut self, dir: BorrowedFd<'_>, name: &Path, is_dir: bool, mode: u32) -> Result<(), Errno> {
        let _as_user = if self.root_creates_in(dir) { None } else { Some(AsUser::enter(&self.plan.user)?) };
        create_at(dir, name, is_dir, mode)
    }

    /// The directory at `path`, creating missing components (0755). An existing directory
    /// costs one lookup; a missing one, a lookup per missing component and its parent.
    pub fn ensure_dir(&mut self, path: &Path) -> Result<OwnedFd, RootfsError> {
        let normal: PathBuf = std::iter::once(Component::RootDir)
            .chain(path.components().filter(|c| matches!(c, Component::Normal(_))))
            .collect();
        self.ensure_normal_dir(&normal)
    }

    /// [`Builder::ensure_dir`] for an absolute path of normal components only.
    fn ensure_normal_dir(&mut self, path: &Path) -> Result<OwnedFd, RootfsError> {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        match self.open(path, flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(RootfsError::fs("open", path, e)),
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(RootfsError::fs("open", path, Errno::ENOENT));
        };
        let dir = self.ensure_normal_dir(parent)?;
        self.create_in(dir.as_fd(), Path::new(name), true, 0o755).map_err(|e| RootfsError::fs("mkdir", path, e))?;
        self.created.insert(path.to_path_buf());
        self.open(path, flags).map_err(|e| RootfsError::fs("open", path, e))
    }

    /// The (empty, new) file at `path`, creating its parents.
    pub fn ensure_file(&mut self, path: &Path) -> Result<OwnedFd, RootfsError> {
        if let Ok(fd) = self.open(path, libc::O_PATH) {
            return Ok(fd);
        }
        let (parent, name) = split(path)?;
        let dir = self.ensure_dir(parent)?;
        self.create_in(dir.as_fd(), name, false, 0o644).map_err(|e| RootfsError::fs("create", path, e))?;
        self.created.insert(path.to_path_buf());
        self.open(path, libc::O_PATH).map_err(|e| RootfsError::fs("open", path, e))
    }

    /// A symlink at `link` with the text `target`.
    pub fn symlink(&mut self, link: &Path, target: &Path) -> Result<(), RootfsError> {
        let (parent, name) = split(link)?;
        let dir = self.ensure_dir(parent)?;
        let _as_user = if self.root_creates_in(dir.as_fd()) {
            None
        } else {
            Some(AsUser::enter(&self.plan.user).map_err(|e| RootfsError::fs("symlink", link, e))?)
        };
        nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name).map_err(|e| RootfsError::fs("symlink", link, e))
    }

    /// A root-owned file with exactly `content` and `mode`, in a root-owned directory.
    pub fn write_file(&mut self, path: &Path, content: &[u8], mode: u32) -> Result<(), RootfsError> {
        let (parent, name) = split(path)?;
        let dir = self.ensure_dir(parent)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
        let fd = pathsafe::openat(dir.as_fd(), name, flags, 0o600).map_err(|e| RootfsError::fs("create", path, e))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(content).map_err(|e| RootfsError::fs("write", path, io_errno(&e)))?;
        nix::sys::stat::fchmod(f.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| RootfsError::fs("chmod", path, e))
    }

    /// A root-created directory with exactly `mode` and owner.
    fn make_dir(&mut self, path: &Path, mode: u32, uid: u32, gid: u32) -> Result<(), RootfsError> {
        let dir = self.ensure_dir(path)?;
        let fd = pathsafe::openat(dir.as_fd(), Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| RootfsError::fs("open", path, e))?;
        nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))
            .map_err(|e| RootfsError::fs("chown", path, e))?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| RootfsError::fs("chmod", path, e))
    }

    /// A new tmpfs at `path` (created if needed), recorded as ours.
    pub fn mount_tmpfs(&mut self, path: &Path, opts: &[FsOption<'_>], attrs: u64) -> Result<(), RootfsError> {
        let mnt = new_tmpfs(opts, attrs, path)?;
        let dev = pathsafe::fstat(mnt.as_fd()).map_err(|e| RootfsError::fs("stat", path, e))?.st_dev;
        self.attach_new(mnt.as_fd(), "tmpfs", path)?;
        self.ours.push(dev);
        Ok(())
    }

    /// Attach the detached mount `mnt` at `path` (a directory, created if needed).
    pub fn attach_new(&mut self, mnt: BorrowedFd<'_>, fstype: &'static str, path: &Path) -> Result<(), RootfsError> {
        let target = self.ensure_dir(path)?;
        bind::attach(mnt, target.as_fd()).map_err(|failure| RootfsError::Mount {
            fstype,
            target: path.to_path_buf(),
            failure,
        })?;
        self.created.remove(path);
        Ok(())
    }

    /// Bind `src` at the sandbox path `target`, creating a mount point of the source's kind.
    pub fn bind_new(
        &mut self,
        src: BorrowedFd<'_>,
        src_name: &Path,
        target: &Path,
        attrs: u64,
    ) -> Result<(), RootfsError> {
        let st = pathsafe::fstat(src).map_err(|e| RootfsError::fs("stat", src_name, e))?;
        let at = if pathsafe::is_dir(&st) { self.ensure_dir(target)? } else { self.ensure_file(target)? };
        self.bind_at(src, src_name, at.as_fd(), target, attrs)
    }

    /// Bind `src` on the already opened `at`.
    pub fn bind_at(
        &mut self,
        src: BorrowedFd<'_>,
        src_name: &Path,
        at: BorrowedFd<'_>,
        target: &Path,
        attrs: u64,
    ) -> Result<(), RootfsError> {
        bind::bind(src, at, attrs).map_err(|failure| RootfsError::Bind {
            src: src_name.to_path_buf(),
            target: target.to_path_buf(),
            failure,
        })?;
        self.created.remove(target);
        Ok(())
    }

    /// Cover the object `at` (sandbox path `name`) with an empty read-only placeholder.
    pub fn hide(&mut self, at: BorrowedFd<'_>, name: &Path) -> Result<(), RootfsError> {
        let st = pathsafe::fstat(at).map_err(|e| RootfsError::fs("stat", name, e))?;
        self.hide_stat(at, &st, name)
    }

    /// As [`Builder::hide`], with `at`'s stat already at hand. The placeholders are mounts
    /// that already carry PLACEHOLDER_ATTRS, and a clone keeps its source's flags.
    pub fn hide_stat(&mut self, at: BorrowedFd<'_>, st: &libc::stat, name: &Path) -> Result<(), RootfsError> {
        let ph = if pathsafe::is_dir(st) { self.empty_dir.as_fd() } else { self.empty_file.as_fd() };
        bind::clone_tree(ph).and_then(|tree| bind::attach(tree.as_fd(), at)).map_err(|failure| RootfsError::Bind {
            src: "(empty placeholder)".into(),
            target: name.to_path_buf(),
            failure,
        })
    }

    /// (st_dev, st_ino) of the two placeholders.
    pub fn placeholder_ids(&self) -> Vec<(u64, u64)> {
        [&self.empty_dir, &self.empty_file]
            .iter()
            .filter_map(|fd| pathsafe::fstat(fd.as_fd()).ok().map(|st| (st.st_dev, st.st_ino)))
            .collect()
    }
}

fn new_tmpfs(opts: &[FsOption<'_>], attrs: u64, path: &Path) -> Result<OwnedFd, RootfsError> {
    bind::new_fs("tmpfs", opts, attrs).map_err(|failure| RootfsError::Mount {
        fstype: "tmpfs",
        target: path.to_path_buf(),
        failure,
    })
}

/// Mount flags of the empty placeholders that hide paths.
const PLACEHOLDER_ATTRS: u64 = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;

/// The staging entry `name` bound onto itself with PLACEHOLDER_ATTRS, opened at the bind: set
/// once here, the flags come with every clone of it.
fn placeholder(dir: BorrowedFd<'_>, name: &str, dir_path: &Path) -> Result<OwnedFd, RootfsError> {
    let at = reopen(dir, name, dir_path)?;
    bind::bind(at.as_fd(), at.as_fd(), PLACEHOLDER_ATTRS).map_err(|failure| RootfsError::Bind {
        src: "(empty placeholder)".into(),
        target: dir_path.join(name),
        failure,
    })?;
    reopen(dir, name, dir_path)
}

fn reopen(dir: BorrowedFd<'_>, name: &str, dir_path: &Path) -> Result<OwnedFd, RootfsError> {
    pathsafe::openat(dir, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, 0)
        .map_err(|e| RootfsError::fs("open", dir_path.join(name), e))
}

/// mkdirat or an exclusive create of an empty file; the mode is applied as given (no umask for
/// directories beyond the process's).
fn create_at(dir: BorrowedFd<'_>, name: &Path, is_dir: bool, mode: u32) -> Result<(), Errno> {
    if is_dir {
        return pathsafe::mkdirat(dir, name, mode);
    }
    match pathsafe::openat(dir, name, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW, mode) {
        Ok(_) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

fn split(path: &Path) -> Result<(&Path, &Path), RootfsError> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((p, Path::new(n))),
        _ => Err(RootfsError::Invalid { item: path.display().to_string(), reason: "no parent directory".into() }),
    }
}

pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests;
