//! The init's requests through the library API (`Sandbox` + `init::proto`), as the runtime uses
//! them: RunProgram, Mount/Umount of a detached host mount, Shell on a pty, a failing exec, and
//! Shutdown. `Sandbox::launch` needs a single-threaded caller, so each scenario runs in a forked
//! child of the (multi-threaded) test harness.

mod common;

use nix::unistd::{fork, ForkResult};
use oz_agent::agent::standalone::bare_profile;
use oz_agent::common::proto::{AgentToInit, ExitStatus, InitRequestId, InitToAgent, ProcessRole, ShellRequest, Step};
use oz_agent::Sandbox;
use oz_wire::{LaunchSpec, StdioMode};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn in_child(name: &str, f: impl FnOnce() -> Result<(), String>) {
    // SAFETY: the child runs the scenario and leaves with _exit; glibc makes malloc usable in a
    // child forked from a multi-threaded process.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    eprintln!("{name}: {e}");
                    1
                }
                Err(_) => 2,
            };
            // SAFETY: leave the forked child without running the harness's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0), "{name} failed (see stderr)");
        }
    }
}

fn spec(staging: &Path, id: u64) -> LaunchSpec {
    let config = oz_profiles::Config {
        sandbox_path: staging.to_path_buf(),
        shell_path: "/bin/sh".into(),
        ..oz_profiles::Config::default()
    };
    LaunchSpec {
        sandbox_id: id,
        profile: bare_profile("ozreq", "/bin/sh"),
        config,
        uid: common::test_uid(),
        caller_env: vec![],
        args: vec![],
        cwd: None,
        noexec: true,
        stdio: StdioMode::Log,
        ephemeral: false,
    }
}

/// The next reply, skipping (and collecting) exit events; it must carry the id of the request it
/// answers (`re`).
fn reply(
    sb: &Sandbox,
    re: Option<InitRequestId>,
    exits: &mut Vec<InitToAgent>,
) -> Result<(InitToAgent, Vec<OwnedFd>), String> {
    loop {
        let (id, msg, fds) = sb.recv_message().map_err(|e| e.to_string())?;
        match msg {
            InitToAgent::Exited { .. } if id.is_none() => exits.push(msg),
            other if id == re => return Ok((other, fds)),
            other => return Err(format!("{other:?} answers {id:?}, not {re:?}")),
        }
    }
}

/// Wait for the exit event of `pid`.
fn exit_of(sb: &Sandbox, exits: &mut Vec<InitToAgent>, pid: i32) -> Result<(ProcessRole, ExitStatus), String> {
    loop {
        if let Some(InitToAgent::Exited { role, status, .. }) =
            exits.iter().find(|e| matches!(e, InitToAgent::Exited { pid: p, .. } if *p == pid))
        {
            return Ok((*role, *status));
        }
        let (msg, _) = sb.recv().map_err(|e| e.to_string())?;
        exits.push(msg);
    }
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (std::fs::File::from(r), w)
}

fn open_tree_clone(path: &Path) -> OwnedFd {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: open_tree(OPEN_TREE_CLONE) of a path we created returns a new detached mount fd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), 1u32 | libc::O_CLOEXEC as u32) };
    assert!(fd >= 0, "open_tree {}: {}", path.display(), std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// RunProgram into a noexec sandbox with a read-only mount attached from the host.
fn run_program_and_mount(staging: &Path, share: &Path) -> Result<(), String> {
    let sb = Sandbox::launch(&spec(staging, 700_000 + std::process::id() as u64), vec![]).map_err(|e| e.to_string())?;
    let mut exits = Vec::new();
    if sb.program_pid().is_some() {
        return Err("noexec sandbox started a program".into());
    }
    let home = sb.user().home.clone();
    let target = home.join("share");
    let mnt = open_tree_clone(share);
    let id = sb
        .send(&AgentToInit::Mount { target: target.clone(), read_only: true }, &[mnt.as_raw_fd()])
        .map_err(|e| e.to_string())?;
    match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Mounted { target: t }, _) if t == target => {}
        other => return Err(format!("mount: {other:?}")),
    }
    let (mut out, w) = pipe();
    let devnull = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let script = format!(
        "id -u; cat {0}/f; touch {0}/g 2>/dev/null && echo writable || echo readonly; exit 5",
        target.display()
    );
    let run = AgentToInit::RunProgram {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: vec!["PATH=/usr/bin:/bin".into()],
        cwd: Some("/nonexistent".into()),
        pty: None,
    };
    let id = sb.send(&run, &[devnull.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]).map_err(|e| e.to_string())?;
    drop(w);
    let pid = match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Launched { pid }, _) => pid,
        other => return Err(format!("run: {other:?}")),
    };
    let mut text = String::new();
    out.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let want = format!("{}\nshared\nreadonly\n", common::test_uid());
    if text != want {
        return Err(format!("program output {text:?}, want {want:?}"));
    }
    if exit_of(&sb, &mut exits, pid)? != (ProcessRole::Relaunch, ExitStatus::Code(5)) {
        return Err(format!("exit events {exits:?}"));
    }
    let id = sb.send(&AgentToInit::Umount { target: target.clone() }, &[]).map_err(|e| e.to_string())?;
    match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Unmounted { .. }, _) => {}
        other => return Err(format!("umount: {other:?}")),
    }
    // the Umount removed the placeholder the Mount created; a symlink planted by the user never
    // redirects a mount
    let (mut out, w) = pipe();
    let devnull = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let script = format!(
        "test -e {} && echo placeholder-stayed; ln -s /usr {}/link && echo linked",
        target.display(),
        home.display()
    );
    let run = AgentToInit::RunProgram {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: vec![],
        cwd: None,
        pty: None,
    };
    let id = sb.send(&run, &[devnull.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]).map_err(|e| e.to_string())?;
    drop(w);
    match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Launched { .. }, _) => {}
        other => return Err(format!("ln: {other:?}")),
    }
    let mut text = String::new();
    out.read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text != "linked\n" {
        return Err(format!("ln output {text:?}"));
    }
    let mnt = open_tree_clone(share);
    let via_link = home.join("link").join("share");
    let id = sb
        .send(&AgentToInit::Mount { target: via_link, read_only: true }, &[mnt.as_raw_fd()])
        .map_err(|e| e.to_string())?;
    match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Failed { error }, _)
            if error.step == Step::Mount && [libc::ELOOP, libc::ENOTDIR].contains(&error.errno) => {}
        other => return Err(format!("mount through a symlink: {other:?}")),
    }
    // garbage on the channel is answered, not fatal
    nix::unistd::write(sb.channel(), b"\xff\xff\xff\xff\xff").map_err(|e| e.to_string())?;
    match reply(&sb, None, &mut exits)? {
        (InitToAgent::Failed { error }, _) if error.step == Step::Protocol => {}
        other => return Err(format!("garbage: {other:?}")),
    }
    // a request whose body does not decode is refused to its id
    let mut undecodable = vec![0, 0, 0, 12];
    undecodable.extend_from_slice(&4242u64.to_le_bytes());
    undecodable.extend_from_slice(&[0xff; 4]);
    nix::unistd::write(sb.channel(), &undecodable).map_err(|e| e.to_string())?;
    match reply(&sb, Some(InitRequestId(4242)), &mut exits)? {
        (InitToAgent::Failed { error }, _) if error.step == Step::Protocol => {}
        other => return Err(format!("undecodable request: {other:?}")),
    }
    let bad = AgentToInit::RunProgram { argv: vec!["/nonexistent/prog".into()], env: vec![], cwd: None, pty: None };
    let devnull = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let fd = devnull.as_raw_fd();
    let id = sb.send(&bad, &[fd, fd, fd]).map_err(|e| e.to_string())?;
    match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::Failed { error }, _) if error.step == Step::Exec && error.errno == libc::ENOENT => {}
        other => return Err(format!("bad exec: {other:?}")),
    }
    shutdown(sb, &mut exits)
}

fn shutdown(sb: Sandbox, exits: &mut Vec<InitToAgent>) -> Result<(), String> {
    let id = sb.send(&AgentToInit::Shutdown { grace_ms: 500 }, &[]).map_err(|e| e.to_string())?;
    match reply(&sb, Some(id), exits)? {
        (InitToAgent::ShuttingDown, _) => {}
        other => return Err(format!("shutdown: {other:?}")),
    }
    while sb.recv().is_ok() {}
    let dirs: Vec<PathBuf> = sb.cgroup().map(|c| c.dirs().map(Path::to_path_buf).collect()).unwrap_or_default();
    sb.finish().map_err(|e| e.to_string())?;
    match dirs.iter().find(|d| d.exists()) {
        Some(d) => Err(format!("cgroup {} remains", d.display())),
        None => Ok(()),
    }
}

/// An interactive shell on a pty from the sandbox's devpts, as the user.
fn shell(staging: &Path) -> Result<(), String> {
    let sb = Sandbox::launch(&spec(staging, 710_000 + std::process::id() as u64), vec![]).map_err(|e| e.to_string())?;
    let mut exits = Vec::new();
    let user = sb.user().clone();
    let req = ShellRequest {
        uid: user.uid,
        gid: user.gid,
        groups: vec![],
        home: user.home.clone(),
        term: Some("dumb".into()),
        cols: 80,
        rows: 24,
    };
    let id = sb.send(&AgentToInit::Shell(req), &[]).map_err(|e| e.to_string())?;
    let (pid, master) = match reply(&sb, Some(id), &mut exits)? {
        (InitToAgent::ShellStarted { pid }, mut fds) if fds.len() == 1 => (pid, std::fs::File::from(fds.remove(0))),
        other => return Err(format!("shell: {other:?}")),
    };
    let mut m = master;
    m.write_all(b"echo hi $((40+2)) $(id -u); grep CapEff /proc/self/status; exit 7\n").map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match m.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break, // the slave side closed
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&text);
    if !text.contains(&format!("hi 42 {}", user.uid)) || !text.contains("CapEff:\t0000000000000000") {
        return Err(format!("shell output {text:?}"));
    }
    if !text.contains("[ozreq] $ ") {
        return Err(format!("no prompt in {text:?}"));
    }
    match exit_of(&sb, &mut exits, pid)? {
        (ProcessRole::Shell, ExitStatus::Code(7)) => {}
        other => return Err(format!("shell exit {other:?}")),
    }
    shutdown(sb, &mut exits)
}

#[test]
fn run_program_mount_umount_and_exec_failure() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("srv");
    let share = dir.path().join("share");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("f"), "shared\n").unwrap();
    // the test user must be able to read it
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    in_child("run_program_and_mount", || run_program_and_mount(&staging, &share));
}

#[test]
fn shell_on_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("srv");
    std::fs::create_dir_all(&staging).unwrap();
    in_child("shell", || shell(&staging));
}
