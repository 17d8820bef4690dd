//! The real oz-daemon binary on a temp socket with a temp config, profile dir and state dir:
//! it serves requests with no agents, survives 1,000 garbage/oversized/slow frames while a
//! well-behaved client keeps working, re-adopts a live agent from its state record and
//! releases the state of a dead one, and stops on SIGTERM.

use oz_wire::channel::DaemonChannel;
use oz_wire::client::Client;
use oz_wire::state::{self, SandboxRecord};
use oz_wire::*;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Daemon {
    fn start_in(dir: tempfile::TempDir) -> Daemon {
        let root = dir.path();
        let socket = root.join("run/control.sock");
        let config = root.join("oz.conf");
        if !config.exists() {
            std::fs::create_dir_all(root.join("profiles")).unwrap();
            std::fs::write(root.join("profiles/sleeper.json"), r#"{"name": "sleeper", "path": "/bin/sleep"}"#).unwrap();
            std::fs::write(root.join("profiles/broken.json"), "{ not json").unwrap();
            let conf = format!(
                r#"{{"profile_dir": "{0}/profiles", "socket_path": "{0}/run/control.sock", "state_dir": "{0}/run", "log_dir": "{0}/log", "agent_path": "/nonexistent/oz-agent"}}"#,
                root.display()
            );
            std::fs::write(&config, conf).unwrap();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_oz-daemon"))
            .arg("--config")
            .arg(&config)
            .env("OZ_FRAME_TIMEOUT_MS", "500")
            .env_remove("OZ_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("daemon.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon { child, dir, socket };
        d.wait_for_socket();
        d
    }

    fn start() -> Daemon {
        Daemon::start_in(tempfile::tempdir().unwrap())
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if Client::connect(&self.socket).is_ok() {
                return;
            }
            assert!(self.child.try_wait().unwrap().is_none(), "daemon exited early: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not listen: {}", self.stderr());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.stderr")).unwrap_or_default()
    }

    fn client(&self) -> Client {
        let c = Client::connect(&self.socket).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM and wait; returns the exit code.
    fn stop(mut self) -> (Option<i32>, tempfile::TempDir) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
                return (st.code(), dir);
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn serves_requests_with_no_agents() {
    let d = Daemon::start();
    let mut c = d.client();
    assert!(!c.daemon_version().unwrap().is_empty());
    match c.request(&ClientRequest::ListProfiles).unwrap() {
        DaemonReply::Profiles(p) => {
            assert_eq!(p.len(), 1, "the broken profile must not take the good one down");
            assert_eq!((p[0].index, p[0].name.as_str(), p[0].path.as_str()), (1, "sleeper", "/bin/sleep"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.request(&ClientRequest::ListSandboxes).unwrap(), DaemonReply::Sandboxes(vec![]));
    assert_eq!(c.request(&ClientRequest::Ping).unwrap(), DaemonReply::Pong);
    // root gets the daemon's own records, e.g. the broken profile report
    let logs: Vec<LogRecord> = c.logs(None, false, None).unwrap().map(|r| r.unwrap()).collect();
    assert!(logs.iter().any(|r| r.message.contains("broken.json")), "{logs:?}");
    let two: Vec<_> = c.logs(None, false, Some(2)).unwrap().collect();
    assert_eq!(two.len(), 2);
    // the test runs as root: launching is refused, as the original did
    let launch = ClientRequest::Launch(LaunchParams {
        profile: ProfileRef::Name("sleeper".into()),
        args: vec![],
        cwd: None,
        env: vec![],
        noexec: false,
        attach_stdio: false,
    });
    assert!(matches!(c.request(&launch).unwrap(), DaemonReply::Error(DaemonError::PermissionDenied { .. })));
    assert_eq!(
        c.request(&ClientRequest::Kill { target: KillTarget::Id(42) }).unwrap(),
        DaemonReply::Error(DaemonError::NoSuchSandbox { id: 42 })
    );
    assert_eq!(
        c.request(&ClientRequest::Kill { target: KillTarget::All }).unwrap(),
        DaemonReply::Killed { ids: vec![] }
    );
    assert!(matches!(
        c.request(&ClientRequest::Shell { id: 1, term: "xterm".into(), cols: 80, rows: 24 }).unwrap(),
        DaemonReply::Error(DaemonError::NoSuchSandbox { id: 1 })
    ));
    assert!(matches!(c.request(&ClientRequest::Hello { protocol_version: 1 }).unwrap(), DaemonReply::Error(_)));
    // files: daemon log exists, socket is 0666
    assert!(d.dir.path().join("log/oz-daemon.log").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&d.socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666);
    let (code, dir) = d.stop();
    assert_eq!(code, Some(0));
    assert!(!dir.path().join("run/control.sock").exists(), "socket removed on exit");
}

#[test]
fn wrong_first_frame_and_version_are_refused() {
    let d = Daemon::start();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    frame::write_frame(&mut s, &ClientRequest::Hello { protocol_version: 99 }, 1 << 20).unwrap();
    let r: DaemonReply = frame::read_frame(&mut s, 1 << 20).unwrap();
    assert_eq!(r, DaemonReply::Error(DaemonError::VersionMismatch { daemon: PROTOCOL_VERSION, client: 99 }));
    // A protocol 1 client (before request ids on the agent channel) is told so.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    frame::write_frame(&mut s, &ClientRequest::Hello { protocol_version: 1 }, 1 << 20).unwrap();
    let r: DaemonReply = frame::read_frame(&mut s, 1 << 20).unwrap();
    assert_eq!(r, DaemonReply::Error(DaemonError::VersionMismatch { daemon: PROTOCOL_VERSION, client: 1 }));
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    frame::write_frame(&mut s, &ClientRequest::ListSandboxes, 1 << 20).unwrap();
    assert!(matches!(
        frame::read_frame::<_, DaemonReply>(&mut s, 1 << 20).unwrap(),
        DaemonReply::Error(DaemonError::InvalidRequest { .. })
    ));
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// One abusive connection of kind `i % 8`.
fn abuse(socket: &Path, i: usize, rng: &mut Rng) {
    let Ok(mut s) = UnixStream::connect(socket) else { return };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let hello = frame::encode_frame(&ClientRequest::Hello { protocol_version: PROTOCOL_VERSION }, 1 << 20).unwrap();
    let garbage: Vec<u8> = (0..(rng.next() % 64) as usize).map(|_| rng.next() as u8).collect();
    let _ = match i % 8 {
        0 => s.write_all(&garbage),
        1 => s.write_all(&[0xff, 0xff, 0xff, 0xff]),
        2 => s.write_all(&(2u32 << 20).to_be_bytes()),
        3 => {
            let mut f = (garbage.len() as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&garbage);
            s.write_all(&f)
        }
        4 => s.write_all(&hello).and_then(|_| s.write_all(&[0x7f, 0, 0, 0, 1, 2, 3])),
        5 => {
            // a request with fds it must not carry
            let f = std::fs::File::open("/dev/null").unwrap();
            fdpass::send_frame(s.as_fd(), fdpass::SocketKind::Stream, &hello, &[f.as_fd(), f.as_fd()])
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
        6 => s.write_all(&hello[..6]),
        _ => s
            .write_all(&hello)
            .and_then(|_| s.write_all(&(1u32 << 20).to_be_bytes()))
            .and_then(|_| s.write_all(&[1, 2])),
    };
    // For frames the daemon refuses at once, read until it closes the connection; incomplete
    // frames (kinds 0, 3, 6, 7) are closed after the frame timeout, so just hang up on them.
    let mut buf = [0u8; 256];
    if matches!(i % 8, 1 | 2 | 4 | 5) {
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    }
}

#[test]
fn survives_a_thousand_bad_frames_while_a_good_client_works() {
    let mut d = Daemon::start();
    let done = Arc::new(AtomicBool::new(false));
    let good_rounds = Arc::new(AtomicUsize::new(0));
    let good = {
        let (socket, done, rounds) = (d.socket.clone(), done.clone(), good_rounds.clone());
        std::thread::spawn(move || -> Result<(), String> {
            while !done.load(Ordering::Relaxed) {
                let mut c = Client::connect(&socket).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
                for req in [ClientRequest::ListProfiles, ClientRequest::ListSandboxes, ClientRequest::Ping] {
                    if let DaemonReply::Error(e) = c.request(&req).map_err(|e| format!("{}: {e}", req.kind()))? {
                        return Err(format!("{}: {e}", req.kind()));
                    }
                }
                c.logs(None, false, Some(3))
                    .map_err(|e| e.to_string())?
                    .try_for_each(|r| r.map(drop))
                    .map_err(|e| e.to_string())?;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    // a slow frame: two header bytes, then silence; the daemon must close it (timeout 500 ms)
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.write_all(&[0, 0]).unwrap();
    let slow_started = Instant::now();
    let mut rng = Rng(0x5eed);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let socket = d.socket.clone();
            let mut rng = Rng(rng.next() | 1);
            scope.spawn(move || {
                for i in (t..1000).step_by(4) {
                    abuse(&socket, i, &mut rng);
                }
            });
        }
    });
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(slow.read(&mut b), Ok(0) | Err(_)));
    assert!(slow_started.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));
    done.store(true, Ordering::Relaxed);
    good.join().unwrap().expect("the well-behaved client saw an error");
    assert!(good_rounds.load(Ordering::Relaxed) > 0);
    assert!(d.alive(), "daemon died: {}", d.stderr());
    let mut c = d.client();
    assert_eq!(c.request(&ClientRequest::Ping).unwrap(), DaemonReply::Pong);
}

/// A stand-in agent on a rendezvous socket: answers Hello and sends its State (with mounts the
/// state file does not have) like `oz-agent serve` does after a daemon restart, then stays until
/// told to go.
/// `agent_pid` is what the record claims; the listener runs in this process.
fn fake_rendezvous(
    state_dir: &Path,
    id: u64,
    agent_pid: u32,
) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
    use nix::sys::socket::{accept, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    std::fs::create_dir_all(state::agents_dir(state_dir)).unwrap();
    let sock_path = state::socket_path(state_dir, id);
    let lfd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(lfd.as_raw_fd(), &UnixAddr::new(&sock_path).unwrap()).unwrap();
    listen(&lfd, Backlog::new(4).unwrap()).unwrap();
    let mut rec = record(id, 0, agent_pid, 1_700_000_000);
    rec.store(&state::record_path(state_dir, id)).unwrap();
    rec.mounts = vec!["/home/someone/doc.pdf".into()];
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        // SAFETY: accept returned a new fd that nothing else owns.
        let conn = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(accept(lfd.as_raw_fd()).unwrap()) };
        let ch = DaemonChannel::new(conn);
        ch.accept_hello(Some(id), agent_pid).unwrap();
        ch.event(AgentToDaemon::State(rec), &[]).unwrap();
        let _ = rx.recv();
    });
    (t, tx)
}

fn record(id: u64, init_pid: u32, agent_pid: u32, started_at: u64) -> SandboxRecord {
    SandboxRecord {
        id,
        profile: "sleeper".into(),
        uid: 1000,
        user: "someone".into(),
        phase: oz_wire::SandboxState::Running,
        init_pid,
        agent_pid,
        started_at,
        mounts: vec![],
        network: None,
        display: None,
        ephemeral: false,
    }
}

#[test]
fn restart_readopts_live_agents_and_releases_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("run");
    // a dead agent's leftovers (its pid is a reaped child of ours)
    let dead_pid = {
        let mut dead = Command::new("/bin/true").spawn().unwrap();
        dead.wait().unwrap();
        dead.id()
    };
    std::fs::create_dir_all(state::agents_dir(&state_dir)).unwrap();
    // (ids far above what a concurrently running daemon uses: cgroups are named by id)
    let stale = record(900_000_012, dead_pid, dead_pid, 1);
    stale.store(&state::record_path(&state_dir, 900_000_012)).unwrap();
    // a live agent; once its channel closes it counts as dead (the record names a gone pid)
    let (agent, release) = fake_rendezvous(&state_dir, 900_000_007, dead_pid);
    let d = Daemon::start_in(dir);
    let mut c = d.client();
    match c.request(&ClientRequest::ListSandboxes).unwrap() {
        DaemonReply::Sandboxes(list) => {
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!((list[0].id, list[0].uid, list[0].profile.as_str()), (900_000_007, 1000, "sleeper"));
            assert_eq!(list[0].mounts, vec![std::path::PathBuf::from("/home/someone/doc.pdf")], "the agent's mounts");
        }
        other => panic!("{other:?}"),
    }
    assert!(!state::record_path(&state_dir, 900_000_012).exists(), "the dead agent's record was not released");
    // the agent goes away: the sandbox disappears at once
    release.send(()).unwrap();
    agent.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if c.request(&ClientRequest::ListSandboxes).unwrap() == DaemonReply::Sandboxes(vec![]) {
            break;
        }
        assert!(Instant::now() < deadline, "sandbox of the dead agent still listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // by the time it is unlisted, its state is released
    assert!(!state::record_path(&state_dir, 900_000_007).exists());
    assert!(!state::socket_path(&state_dir, 900_000_007).exists());
    let logs: Vec<LogRecord> = c.logs(Some(900_000_007), false, None).unwrap().map(|r| r.unwrap()).collect();
    assert!(logs.iter().any(|r| r.message.contains("re-adopted")), "{logs:?}");
    assert!(logs.iter().any(|r| r.message.contains("channel closed")), "{logs:?}");
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start();
    let out = Command::new(env!("CARGO_BIN_EXE_oz-daemon"))
        .arg("--config")
        .arg(d.dir.path().join("oz.conf"))
        .env_remove("OZ_SOCKET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another oz-daemon is listening"), "{err}");
}
