//! One sandbox-building test at a time on the whole host.
//!
//! The leftover check compares host-wide snapshots (processes of the shared test users, `oz-*`
//! processes, cgroups, mounts), so a sandbox of any concurrent test, in this binary or in
//! another checkout's test run, would count as a leftover. [`Serial`] holds an in-process mutex
//! (tests of one binary run on several threads) and an exclusive `flock` on [`LOCK_PATH`]
//! (several test processes on one host).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, MutexGuard};

/// The host-wide lock file. Running oz by hand beside a test run: `flock` this path.
pub const LOCK_PATH: &str = "/tmp/oz-integration.lock";

static IN_PROCESS: Mutex<()> = Mutex::new(());

thread_local! {
    /// How many [`Serial`]s this thread holds: a test that takes the lock for its own setup and
    /// then starts a harness that takes it again nests, instead of waiting for itself.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Held for the whole of one test; dropping the outermost one lets the next test run.
pub struct Serial {
    _held: Option<(File, MutexGuard<'static, ()>)>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Blocks until this test is the only sandbox-building test on the host.
///
/// A test run started under `flock LOCK_PATH cargo test ...` inherits the descriptor that holds
/// the lock; locking through that same open file returns at once instead of waiting for itself.
pub fn acquire() -> Serial {
    if DEPTH.with(|d| d.get()) > 0 {
        DEPTH.with(|d| d.set(d.get() + 1));
        return Serial { _held: None };
    }
    let guard = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let file = inherited().unwrap_or_else(|| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(LOCK_PATH)
            .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"))
    });
    loop {
        // SAFETY: flock on an fd this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "flock {LOCK_PATH}: {err}");
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    Serial { _held: Some((file, guard)) }
}

/// A descriptor of [`LOCK_PATH`] inherited from a parent (`flock LOCK_PATH COMMAND`), duplicated.
fn inherited() -> Option<File> {
    let lock = std::fs::metadata(LOCK_PATH).ok()?;
    std::fs::read_dir("/proc/self/fd").ok()?.flatten().find_map(|entry| {
        let fd: std::os::fd::RawFd = entry.file_name().to_str()?.parse().ok()?;
        let meta = std::fs::metadata(entry.path()).ok()?;
        use std::os::unix::fs::MetadataExt;
        if meta.dev() != lock.dev() || meta.ino() != lock.ino() {
            return None;
        }
        // SAFETY: `fd` is open in this process (listed in /proc/self/fd); only a duplicate is
        // taken, owned by the returned File.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        // SAFETY: `dup` is a new descriptor this function owns.
        (dup >= 0).then(|| unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(dup) })
    })
}
