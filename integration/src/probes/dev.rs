//! Device nodes and terminals: disks, memory, ports, kmsg, kvm, extra /dev entries, TIOCSTI.

use super::{io_errno, Ctx, Outcome, Probe};
use nix::errno::Errno;
use std::os::fd::AsRawFd;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "dev-disk", run: dev_disk },
        Probe { name: "dev-mem", run: |_| open_any(&["/dev/mem", "/dev/kmem"]) },
        Probe { name: "dev-port", run: |_| open_any(&["/dev/port"]) },
        Probe { name: "dev-kmsg", run: |_| open_any(&["/dev/kmsg"]) },
        Probe { name: "dev-kvm", run: |_| open_any(&["/dev/kvm"]) },
        Probe { name: "dev-fuse", run: |_| open_any(&["/dev/fuse"]) },
        Probe { name: "dev-extra-nodes", run: dev_extra },
        Probe { name: "tiocsti", run: tiocsti },
    ]
}

/// The minimal /dev a sandbox may have.
const MINIMAL_DEV: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdin", "stdout", "stderr",
    "console", "core", "mqueue",
];

/// Opens each path read-only; ESCAPE on the first success.
fn open_any(paths: &[&str]) -> Outcome {
    let mut tried = Vec::new();
    for path in paths {
        match std::fs::File::open(path) {
            Ok(_) => return Outcome::Escape(format!("opened {path}")),
            Err(e) => tried.push(format!("{path}: {}", io_errno(&e))),
        }
    }
    Outcome::Blocked(tried.join(", "))
}

fn dev_disk(_: &Ctx) -> Outcome {
    let mut paths: Vec<String> =
        ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/loop0"].iter().map(|s| s.to_string()).collect();
    for entry in std::fs::read_dir("/dev").into_iter().flatten().flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        let disk = ["sd", "vd", "hd", "xvd", "nvme", "dm-", "mmcblk", "loop"];
        if disk.iter().any(|p| n.starts_with(p)) && n != "loop-control" {
            paths.push(format!("/dev/{n}"));
        }
    }
    paths.sort();
    paths.dedup();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    match open_any(&refs) {
        Outcome::Blocked(_) => Outcome::Blocked(format!("no disk node opens ({} tried)", refs.len())),
        other => other,
    }
}

fn dev_extra(_: &Ctx) -> Outcome {
    let rd = match std::fs::read_dir("/dev") {
        Ok(rd) => rd,
        Err(e) => return Outcome::Blocked(format!("list /dev: {}", io_errno(&e))),
    };
    let mut extra: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !MINIMAL_DEV.contains(&n.as_str()))
        .collect();
    extra.sort();
    if extra.is_empty() {
        Outcome::Blocked("/dev holds only the minimal set".into())
    } else {
        let n = extra.len();
        extra.truncate(8);
        Outcome::Escape(format!("{n} extra /dev entries: {}", extra.join(" ")))
    }
}

/// Pushes characters into the input queue of the terminal on stdin (or /dev/tty) and reads
/// them back.
fn tiocsti(_: &Ctx) -> Outcome {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti") {
        if v.trim() == "0" {
            return Outcome::NotApplicable("dev.tty.legacy_tiocsti=0: TIOCSTI fails for everyone".into());
        }
    }
    // SAFETY: isatty only inspects the fd.
    let fd = if unsafe { libc::isatty(0) } == 1 {
        0
    } else {
        match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
            Ok(f) => {
                let fd = f.as_raw_fd();
                std::mem::forget(f);
                fd
            }
            Err(e) => return Outcome::NotApplicable(format!("no terminal to attack: /dev/tty: {}", io_errno(&e))),
        }
    };
    for &b in b"z\n" {
        // SAFETY: TIOCSTI reads one byte from the pointer.
        let r = unsafe { libc::ioctl(fd, libc::TIOCSTI, &b as *const u8) };
        if r != 0 {
            return Outcome::Blocked(format!("ioctl(TIOCSTI): {:?}", Errno::last()));
        }
    }
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
    let mut buf = [0u8; 16];
    let n = if ready > 0 {
        // SAFETY: reads into a 16-byte buffer.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
    } else {
        0
    };
    let got = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    Outcome::Escape(format!("TIOCSTI accepted; read back {got:?}"))
}
