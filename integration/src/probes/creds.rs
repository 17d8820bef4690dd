//! Credentials: uid 0, capabilities, no_new_privs, seccomp, setuid(0), setuid binaries.

use super::{child_code, child_verdict, in_child, need, Ctx, Outcome, Probe};
use nix::errno::Errno;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "uid-root", run: uid_root },
        Probe { name: "caps", run: caps },
        Probe { name: "no-new-privs", run: no_new_privs },
        Probe { name: "seccomp-inactive", run: seccomp_inactive },
        Probe { name: "setuid-root", run: setuid_root },
        Probe { name: "suid-exec", run: suid_exec },
    ]
}

/// The value of a `Key:` line of /proc/self/status.
pub(super) fn status_field(key: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

fn uid_root(_: &Ctx) -> Outcome {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: getres[ug]id only write the three integers.
    unsafe {
        libc::getresuid(&mut r, &mut e, &mut s);
        libc::getresgid(&mut gr, &mut ge, &mut gs);
    }
    let ids = format!("uid {r}/{e}/{s} gid {gr}/{ge}/{gs}");
    if [r, e, s, gr, ge, gs].contains(&0) {
        Outcome::Escape(format!("running with id 0: {ids}"))
    } else {
        Outcome::Blocked(ids)
    }
}

fn caps(_: &Ctx) -> Outcome {
    let mut nonzero = Vec::new();
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        match status_field(key) {
            Some(v) if v.trim_start_matches('0').is_empty() => {}
            Some(v) => nonzero.push(format!("{key}={v}")),
            None => return Outcome::Blocked(format!("no {key} in /proc/self/status")),
        }
    }
    if nonzero.is_empty() {
        Outcome::Blocked("every capability set is empty".into())
    } else {
        Outcome::Escape(nonzero.join(" "))
    }
}

fn no_new_privs(_: &Ctx) -> Outcome {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    match r {
        1 => Outcome::Blocked("no_new_privs is set".into()),
        0 => Outcome::Escape("no_new_privs is not set".into()),
        _ => Outcome::Escape(format!("PR_GET_NO_NEW_PRIVS: {:?}", Errno::last())),
    }
}

fn seccomp_inactive(_: &Ctx) -> Outcome {
    match status_field("Seccomp").as_deref() {
        Some("2") => Outcome::Blocked("seccomp filter mode".into()),
        Some(v) => Outcome::Escape(format!("Seccomp: {v}")),
        None => Outcome::Escape("no Seccomp line in /proc/self/status".into()),
    }
}

fn setuid_root(_: &Ctx) -> Outcome {
    let end = in_child(|| {
        // SAFETY: changes only the child's credentials.
        let r = unsafe { libc::setresuid(0, 0, 0) };
        child_code(if r == 0 { Ok(()) } else { Err(Errno::last()) })
    });
    child_verdict("setresuid(0, 0, 0)", end)
}

/// Runs a root-owned setuid copy of this probe (given by the test) and asks it for its euid.
fn suid_exec(ctx: &Ctx) -> Outcome {
    let path = match need(ctx, "suid") {
        Ok(p) => p,
        Err(o) => return o,
    };
    match std::process::Command::new(path).arg("euid").output() {
        Ok(out) => {
            let euid = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if euid == "0" {
                Outcome::Escape(format!("{path} ran with euid 0"))
            } else {
                Outcome::Blocked(format!("{path} ran with euid {euid:?} ({})", out.status))
            }
        }
        Err(e) => Outcome::Blocked(format!("exec {path}: {}", super::io_errno(&e))),
    }
}
