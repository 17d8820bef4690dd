//! Filesystem: host files, read-only and blacklisted items, symlink attacks, writable system
//! directories, exec from writable mounts, device nodes by mknod.

use super::{
    child_code, child_verdict, cstr, in_child, io_errno, need, read_some, scratch_name, ChildEnd, Ctx, Outcome, Probe,
};
use nix::errno::Errno;
use std::os::unix::fs::OpenOptionsExt;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "shadow-read", run: |_| read_probe("/etc/shadow") },
        Probe { name: "write-root", run: |_| create_in("/") },
        Probe { name: "write-usr", run: |_| create_in("/usr") },
        Probe { name: "write-etc", run: |_| create_in("/etc") },
        Probe { name: "write-bin", run: |_| create_in("/bin") },
        Probe { name: "home-file", run: |c| ctx_read(c, "host-file") },
        Probe { name: "etc-not-included", run: |_| read_probe("/etc/login.defs") },
        Probe { name: "readonly-write", run: readonly_write },
        Probe { name: "blacklist-read", run: |c| ctx_read(c, "blacklisted") },
        Probe { name: "blacklist-symlink", run: |c| ctx_read(c, "blacklisted-link") },
        Probe { name: "wl-symlink-shadow", run: |c| ctx_read(c, "shadow-link") },
        Probe { name: "wl-symlink-rootdir", run: wl_symlink_rootdir },
        Probe { name: "can-create-symlink", run: can_create_symlink },
        Probe { name: "proc-root-other", run: proc_root_other },
        Probe { name: "exec-tmp", run: |_| exec_from("/tmp") },
        Probe { name: "exec-shm", run: |_| exec_from("/dev/shm") },
        Probe { name: "default-blacklist-su", run: |_| read_probe("/usr/bin/su") },
        Probe { name: "default-blacklist-sbin", run: |_| list_probe("/usr/sbin") },
        Probe { name: "sys-writable", run: sys_writable },
        Probe { name: "mknod-dev", run: mknod_dev },
    ]
}

/// ESCAPE when the file can be opened and has content.
fn read_probe(path: &str) -> Outcome {
    match read_some(path, 64) {
        Ok(b) if !b.is_empty() => Outcome::Escape(format!("read {} bytes of {path}", b.len())),
        Ok(_) => Outcome::Blocked(format!("{path} reads empty")),
        Err(e) => Outcome::Blocked(format!("read {path}: {}", io_errno(&e))),
    }
}

fn ctx_read(ctx: &Ctx, key: &str) -> Outcome {
    match need(ctx, key) {
        Ok(p) => read_probe(p),
        Err(o) => o,
    }
}

/// ESCAPE when the directory lists any entry.
fn list_probe(path: &str) -> Outcome {
    match std::fs::read_dir(path) {
        Ok(rd) => {
            let names: Vec<String> =
                rd.flatten().take(4).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            if names.is_empty() {
                Outcome::Blocked(format!("{path} is empty"))
            } else {
                Outcome::Escape(format!("{path} lists {}", names.join(" ")))
            }
        }
        Err(e) => Outcome::Blocked(format!("list {path}: {}", io_errno(&e))),
    }
}

/// Creates (and at once removes) a new file in `dir`.
fn create_in(dir: &str) -> Outcome {
    let name = scratch_name(dir, "write");
    let r = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&name);
    match r {
        Ok(_) => {
            let _ = std::fs::remove_file(&name);
            Outcome::Escape(format!("created {name}"))
        }
        Err(e) => Outcome::Blocked(format!("create {name}: {}", io_errno(&e))),
    }
}

fn readonly_write(ctx: &Ctx) -> Outcome {
    let path = match need(ctx, "ro-file") {
        Ok(p) => p,
        Err(o) => return o,
    };
    // Opening for writing is the attack; nothing is written.
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(_) => Outcome::Escape(format!("opened read-only item {path} for writing")),
        Err(e) => Outcome::Blocked(format!("open {path} for writing: {}", io_errno(&e))),
    }
}

fn wl_symlink_rootdir(ctx: &Ctx) -> Outcome {
    let (link, secret) = match (need(ctx, "rootdir-link"), need(ctx, "rootdir-secret")) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(o), _) | (_, Err(o)) => return o,
    };
    match std::fs::read_dir(link) {
        Ok(rd) => {
            let found = rd.flatten().any(|e| e.file_name().to_string_lossy() == secret);
            if found {
                Outcome::Escape(format!("listed the root-owned directory through {link}"))
            } else {
                Outcome::Blocked(format!("{link} lists no {secret}"))
            }
        }
        Err(e) => Outcome::Blocked(format!("list {link}: {}", io_errno(&e))),
    }
}

/// A can_create item whose parent is a user symlink to a root-owned directory: writing there
/// means root created (or chowned) something where the user may not.
fn can_create_symlink(ctx: &Ctx) -> Outcome {
    let dir = match need(ctx, "cc-path") {
        Ok(p) => p,
        Err(o) => return o,
    };
    if std::fs::symlink_metadata(dir).is_ok() {
        return create_in(dir);
    }
    // Not there: creating it ourselves is the same breach (a directory in a root-owned place).
    match std::fs::create_dir(dir) {
        Ok(()) => {
            let _ = std::fs::remove_dir(dir);
            Outcome::Escape(format!("created directory {dir}"))
        }
        Err(e) => Outcome::Blocked(format!("create {dir}: {}", io_errno(&e))),
    }
}

/// Lists the root directory of another process when that root is not our own: the host's
/// (or the sandbox init's) filesystem seen through /proc/PID/root.
fn proc_root_other(_: &Ctx) -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let mine = match std::fs::metadata("/") {
        Ok(m) => (m.dev(), m.ino()),
        Err(e) => return Outcome::Blocked(format!("stat /: {}", io_errno(&e))),
    };
    let my_pid = std::process::id().to_string();
    let (mut tried, mut same) = (0, 0);
    let mut last = String::from("none denied");
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == my_pid {
            continue;
        }
        tried += 1;
        let root = format!("/proc/{pid}/root");
        match std::fs::metadata(&root) {
            Ok(m) if (m.dev(), m.ino()) == mine => same += 1,
            Ok(_) => match std::fs::read_dir(&root) {
                Ok(rd) => return Outcome::Escape(format!("listed {root}, another root ({} entries)", rd.count())),
                Err(e) => last = format!("list {root}: {}", io_errno(&e)),
            },
            Err(e) => last = format!("stat {root}: {}", io_errno(&e)),
        }
    }
    Outcome::Blocked(format!("{tried} processes, {same} share our root; last {last}"))
}

/// Writes a script to `dir` and executes it: writable mounts must be noexec.
fn exec_from(dir: &str) -> Outcome {
    let path = scratch_name(dir, "exec");
    let r = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o755).open(&path);
    if let Err(e) = r.and_then(|mut f| std::io::Write::write_all(&mut f, b"#!/bin/sh\nexit 42\n")) {
        return Outcome::Blocked(format!("write {path}: {}", io_errno(&e)));
    }
    let c_path = cstr(&path);
    let end = in_child(|| {
        let argv = [c_path.as_ptr(), std::ptr::null()];
        // SAFETY: argv is NUL-terminated and outlives the call; only returns on failure.
        unsafe { libc::execv(c_path.as_ptr(), argv.as_ptr()) };
        child_code::<()>(Err(Errno::last()))
    });
    let _ = std::fs::remove_file(&path);
    match end {
        ChildEnd::Exited(42) => Outcome::Escape(format!("executed {path}")),
        other => child_verdict(&format!("exec {path}"), other),
    }
}

/// Opens (never writes) a writable-looking sysfs attribute for writing.
fn sys_writable(_: &Ctx) -> Outcome {
    let candidates = [
        "/sys/kernel/uevent_helper",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/ksm/run",
        "/sys/power/state",
    ];
    let mut tried = Vec::new();
    for path in candidates {
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(_) => return Outcome::Escape(format!("opened {path} for writing")),
            Err(e) => tried.push(format!("{path}: {}", io_errno(&e))),
        }
    }
    if tried.is_empty() {
        Outcome::Blocked("no sysfs attribute found".into())
    } else {
        Outcome::Blocked(tried.join(", "))
    }
}

fn mknod_dev(_: &Ctx) -> Outcome {
    let path = scratch_name("/tmp", "mknod");
    let c_path = cstr(&path);
    // SAFETY: c_path is a valid C string; the node (1:3, /dev/null) is removed at once.
    let r = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    if r == 0 {
        let _ = std::fs::remove_file(&path);
        return Outcome::Escape(format!("created character device {path}"));
    }
    let e = Errno::last();
    Outcome::Blocked(format!("mknod {path}: {e:?}"))
}
