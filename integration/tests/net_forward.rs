//! Socket forwarders (`networking.sockets`), end to end: a real daemon, sandboxes of the test
//! user, traffic only on the host's loopback and inside the sandboxes' own network namespaces.
//!
//! The sandbox side of each exchange is a socket the test creates in the sandbox's network
//! namespace (a thread that entered it with setns): inside, only the forwarders lead out. The
//! controls show the checks can fail: a port without a forwarder is refused inside, the host
//! service is not reachable directly from inside, and a host port without a forwarder is
//! refused on the host.

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon, TestUser};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce() + Send>;

/// A thread inside the network namespace of a sandbox's init: the sockets it creates stay in
/// that namespace.
struct Inside(std::sync::mpsc::Sender<Job>);

impl Inside {
    fn new(init: u32) -> Inside {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let ns = File::open(format!("/proc/{init}/ns/net")).expect("open the sandbox's netns");
        std::thread::spawn(move || {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the sandbox");
            for job in rx {
                job();
            }
        });
        Inside(tx)
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.0.send(Box::new(move || drop(tx.send(f())))).expect("sandbox thread");
        rx.recv().expect("sandbox thread result")
    }
}

/// A free port on the host's loopback (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn reply_to(who: &str, data: &[u8]) -> Vec<u8> {
    [who.as_bytes(), b":", data].concat()
}

/// A stream echo service: reads to EOF, answers `<who>:<data>`, closes.
fn serve_stream<S: Read + Write + Send + 'static>(mut s: S, who: &'static str) {
    std::thread::spawn(move || {
        let mut data = Vec::new();
        if s.read_to_end(&mut data).is_ok() {
            let _ = s.write_all(&reply_to(who, &data));
        }
    });
}

fn tcp_service(l: TcpListener, who: &'static str) {
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            serve_stream(s, who);
        }
    });
}

fn unix_service(l: UnixListener, who: &'static str) {
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            serve_stream(s, who);
        }
    });
}

fn udp_service(s: UdpSocket, who: &'static str) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&reply_to(who, &buf[..n]), from);
        }
    });
}

fn unixgram_service(s: UnixDatagram, who: &'static str) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to_addr(&reply_to(who, &buf[..n]), &from);
        }
    });
}

/// Send `msg`, half-close, read the whole answer.
fn exchange<S: Read + Write>(mut s: S, msg: &[u8], half_close: impl FnOnce(&S)) -> Vec<u8> {
    s.write_all(msg).unwrap();
    half_close(&s);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn tcp_exchange(s: TcpStream, msg: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    exchange(s, msg, |s| s.shutdown(Shutdown::Write).unwrap())
}

fn unix_exchange(s: UnixStream, msg: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    exchange(s, msg, |s| s.shutdown(Shutdown::Write).unwrap())
}

fn abstract_addr(name: &str) -> SocketAddr {
    SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
}

fn dgram_exchange(s: &UnixDatagram, to: &SocketAddr, msg: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.send_to_addr(msg, to).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

fn udp_exchange(s: &UdpSocket, msg: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.send(msg).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// A directory for the host's unix services, reachable by the test user.
fn host_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("oz-fwd-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn open_to_all(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
}

fn forward_profile(name: &str, sockets: Value) -> Value {
    profile(name, "/bin/sleep", json!({"networking": {"type": "empty", "sockets": sockets}}))
}

/// Entries of /proc/<pid>/fd.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// The agent's fd count once it has stopped changing (a connection just answered may not be
/// closed by the agent yet).
fn settled_fd_count(pid: i32) -> usize {
    let mut last = fd_count(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = fd_count(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn init_of(d: &Daemon, id: u64) -> u32 {
    d.sandbox(id).expect("sandbox listed").init_pid
}

fn agent_of(d: &Daemon, id: u64) -> i32 {
    d.tracked(id).agent.expect("agent tracked").pid
}

#[test]
fn client_forwarders_carry_data_both_ways() {
    let host = host_dir();
    let (tcp_port, udp_port) = (free_port(), free_port());
    let unix_path = host.path().join("stream.sock");
    let gram_path = host.path().join("gram.sock");
    let t2u_path = host.path().join("t2u.sock");
    let secret_path = host.path().join("root-only.sock");
    tcp_service(TcpListener::bind(("127.0.0.1", tcp_port)).unwrap(), "tcp");
    udp_service(UdpSocket::bind(("127.0.0.1", udp_port)).unwrap(), "udp");
    unix_service(UnixListener::bind(&unix_path).unwrap(), "unix");
    unixgram_service(UnixDatagram::bind(&gram_path).unwrap(), "gram");
    unix_service(UnixListener::bind(&t2u_path).unwrap(), "t2u");
    unix_service(UnixListener::bind(&secret_path).unwrap(), "secret");
    for p in [&unix_path, &gram_path, &t2u_path] {
        open_to_all(p);
    }
    // Only root may connect to this one: the forwarder connects as the user, also when a
    // symlink (as a user could plant in a directory of theirs) leads to it.
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link_path = host.path().join("link.sock");
    std::os::unix::fs::symlink(&secret_path, &link_path).unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let sockets = json!([
        {"type": "client", "proto": "tcp", "port": 7001, "dport": tcp_port},
        {"type": "client", "proto": "udp", "port": 7002, "dport": udp_port},
        {"type": "client", "proto": "unix", "port": 7003, "destination": s(&unix_path)},
        {"type": "client", "proto": "unixgram", "port": 7004, "destination": s(&gram_path)},
        {"type": "client", "proto": "tcp2unix", "port": 7005, "destination": s(&t2u_path)},
        {"type": "client", "proto": "tcp2unix", "port": 7006, "destination": s(&secret_path)},
        {"type": "client", "proto": "tcp2unix", "port": 7007, "destination": s(&link_path)},
    ]);
    let d = Daemon::start(&[forward_profile("ozt-fwd-client", sockets)]);
    let id = d.launch(&user_a(), "ozt-fwd-client", &["600"]);
    let inside = Inside::new(init_of(&d, id));

    let tcp = inside.run(|| TcpStream::connect("127.0.0.1:7001")).expect("connect to the tcp forwarder");
    assert_eq!(tcp_exchange(tcp, b"hello"), b"tcp:hello");
    let udp = inside.run(|| {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect("127.0.0.1:7002").unwrap();
        u
    });
    assert_eq!(udp_exchange(&udp, b"dgram"), b"udp:dgram");
    assert_eq!(udp_exchange(&udp, b"again"), b"udp:again", "the session carries a second datagram");
    let name = s(&unix_path);
    let unix = inside.run(move || UnixStream::connect_addr(&abstract_addr(&name))).expect("unix forwarder");
    assert_eq!(unix_exchange(unix, b"stream"), b"unix:stream");
    let gram = inside.run(|| UnixDatagram::bind_addr(&abstract_addr("ozt-fwd-peer")).unwrap());
    assert_eq!(dgram_exchange(&gram, &abstract_addr(&s(&gram_path)), b"g"), b"gram:g");
    let t2u = inside.run(|| TcpStream::connect("127.0.0.1:7005")).expect("tcp2unix forwarder");
    assert_eq!(tcp_exchange(t2u, b"ctl"), b"t2u:ctl");

    // The user may not connect to the root-only socket, so neither may its forwarder.
    for port in [7006, 7007] {
        let mut secret = inside.run(move || TcpStream::connect(("127.0.0.1", port))).expect("the listener exists");
        secret.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        // The forwarder closes (or resets) the connection it could not join: no answer.
        let _ = secret.write_all(b"x").and_then(|()| secret.shutdown(Shutdown::Write));
        let mut answer = Vec::new();
        let _ = secret.read_to_end(&mut answer);
        assert_eq!(answer, b"", "a root-only host socket was reached through the forwarder on {port}");
    }
    // Control: root itself does reach it (the refusal above is the user's credentials).
    assert_eq!(unix_exchange(UnixStream::connect(&link_path).unwrap(), b"r"), b"secret:r");
    // Controls: nothing listens where no forwarder is, and the host service itself is not
    // reachable from inside.
    let refused = inside.run(|| TcpStream::connect("127.0.0.1:7009"));
    assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
    let direct = inside.run(move || TcpStream::connect(("127.0.0.1", tcp_port)));
    assert!(direct.is_err(), "the host's loopback service is reachable from the sandbox without a forwarder");
    d.finish();
}

#[test]
fn server_forwarders_carry_data_both_ways() {
    let (tcp_port, udp_port, t2u_port) = (free_port(), free_port(), free_port());
    let sockets = json!([
        {"type": "server", "proto": "tcp", "port": tcp_port, "dport": 8001},
        {"type": "server", "proto": "udp", "port": udp_port, "dport": 8002},
        {"type": "server", "proto": "unix", "port": 8003, "destination": "/run/ozt-stream"},
        {"type": "server", "proto": "unixgram", "port": 8004, "destination": "/run/ozt-gram"},
        {"type": "server", "proto": "tcp2unix", "port": t2u_port, "destination": "/run/ozt-t2u"},
    ]);
    let d = Daemon::start(&[forward_profile("ozt-fwd-server", sockets)]);
    let a = user_a();
    let id = d.launch(&a, "ozt-fwd-server", &["600"]);
    let inside = Inside::new(init_of(&d, id));
    // The services, inside the sandbox.
    tcp_service(inside.run(|| TcpListener::bind("127.0.0.1:8001").unwrap()), "tcp");
    udp_service(inside.run(|| UdpSocket::bind("127.0.0.1:8002").unwrap()), "udp");
    unix_service(inside.run(|| UnixListener::bind_addr(&abstract_addr("/run/ozt-stream")).unwrap()), "unix");
    unixgram_service(inside.run(|| UnixDatagram::bind_addr(&abstract_addr("/run/ozt-gram")).unwrap()), "gram");
    unix_service(inside.run(|| UnixListener::bind_addr(&abstract_addr("/run/ozt-t2u")).unwrap()), "t2u");

    let tcp = TcpStream::connect(("127.0.0.1", tcp_port)).expect("connect to the tcp server forwarder");
    assert_eq!(tcp_exchange(tcp, b"hello"), b"tcp:hello");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(("127.0.0.1", udp_port)).unwrap();
    assert_eq!(udp_exchange(&udp, b"dgram"), b"udp:dgram");
    let dir = oz_wire::state::forward_dir(&d.ws.state_dir, id);
    let stream_path = dir.join("unix-8003.sock");
    let meta = std::fs::symlink_metadata(&stream_path).expect("the server's unix socket");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (a.uid, 0o600), "owned by the user, 0600");
    let dmeta = std::fs::symlink_metadata(&dir).unwrap();
    assert_eq!((dmeta.uid(), dmeta.mode() & 0o777), (0, 0o711), "the directory is root's");
    assert_eq!(unix_exchange(UnixStream::connect(&stream_path).unwrap(), b"s"), b"unix:s");
    let gram = UnixDatagram::bind_addr(&abstract_addr("ozt-fwd-host-peer")).unwrap();
    let to = SocketAddr::from_pathname(dir.join("unixgram-8004.sock")).unwrap();
    assert_eq!(dgram_exchange(&gram, &to, b"g"), b"gram:g");
    let t2u = TcpStream::connect(("127.0.0.1", t2u_port)).expect("tcp2unix server forwarder");
    assert_eq!(tcp_exchange(t2u, b"ctl"), b"t2u:ctl");
    // The sandbox record lists them.
    let listed = d.list_json(&a);
    let names: Vec<&str> = listed[0]["network"]["forwarders"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 5, "oz list --json forwarders: {listed:?}");
    assert!(names.contains(&"server unixgram:8004"), "{names:?}");
    // Control: a host port without a forwarder is refused.
    let refused = TcpStream::connect(("127.0.0.1", free_port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // Closed at kill: the host port and the socket directory go with the sandbox.
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    assert!(TcpStream::connect(("127.0.0.1", tcp_port)).is_err(), "the server forwarder outlived its sandbox");
    assert!(!dir.exists(), "{} left behind", dir.display());
    d.finish();
}

/// The program's very first act reaches the host through its forwarders: they listen before it
/// starts. Control: a port without a forwarder is refused the same way.
#[test]
fn a_program_connecting_at_once_finds_its_forwarders_listening() {
    // A host service that answers the first 5 bytes and closes (bash cannot half-close).
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in host.incoming().flatten() {
            let mut got = [0u8; 5];
            if s.read_exact(&mut got).is_ok() {
                let _ = s.write_all(&reply_to("tcp", &got));
            }
        }
    });
    let sockets = json!([{"type": "client", "proto": "tcp", "port": 7001, "dport": port}]);
    // bash's /dev/tcp: a connect within a millisecond or two of the exec.
    let connect = |p: u16| format!("exec 3<>/dev/tcp/127.0.0.1/{p} && echo -n first >&3 && cat <&3");
    let prof = profile("ozt-fwd-first", "/bin/bash", json!({"networking": {"type": "empty", "sockets": sockets}}));
    let d = Daemon::start(&[prof]);
    let a = user_a();
    for _ in 0..5 {
        let out = d.oz(&a, &["run", "ozt-fwd-first", "--", "-c", &connect(7001)]);
        out.assert_ok("oz run connecting at once", &d);
        assert_eq!(out.stdout.trim(), "tcp:first", "{out:?}");
    }
    let out = d.oz(&a, &["run", "ozt-fwd-first", "--", "-c", &connect(7002)]);
    assert!(out.stderr.contains("Connection refused"), "control: a port without forwarder: {out:?}");
    d.finish();
}

/// A daemon and a sandbox of user a (profile `name`) whose 127.0.0.1:7001 is forwarded to a
/// host echo service.
fn one_tcp_client(name: &str) -> (Daemon, u64, TestUser) {
    let port = free_port();
    tcp_service(TcpListener::bind(("127.0.0.1", port)).unwrap(), "tcp");
    let sockets = json!([{"type": "client", "proto": "tcp", "port": 7001, "dport": port}]);
    let d = Daemon::start(&[forward_profile(name, sockets)]);
    let a = user_a();
    let id = d.launch(&a, name, &["600"]);
    (d, id, a)
}

#[test]
fn thousand_sequential_and_fifty_concurrent_connections_leak_no_fd() {
    let (d, id, _) = one_tcp_client("ozt-fwd-many");
    let inside = Inside::new(init_of(&d, id));
    let agent = agent_of(&d, id);
    // One round first, so that lazily opened fds are counted in the baseline.
    let s = inside.run(|| TcpStream::connect("127.0.0.1:7001")).unwrap();
    assert_eq!(tcp_exchange(s, b"warm"), b"tcp:warm");
    let before = settled_fd_count(agent);
    // One at a time: each is answered and closed before the next is opened.
    for i in 0..1000 {
        let s = inside.run(|| TcpStream::connect("127.0.0.1:7001")).expect("connect");
        let msg = format!("seq{i}");
        assert_eq!(tcp_exchange(s, msg.as_bytes()), reply_to("tcp", msg.as_bytes()));
    }
    let conc = inside.run(|| (0..50).map(|_| TcpStream::connect("127.0.0.1:7001").unwrap()).collect::<Vec<_>>());
    for (i, s) in conc.iter().enumerate() {
        (&*s).write_all(format!("c{i}").as_bytes()).unwrap();
    }
    // All 50 are open at once in the agent: 50 x (2 sockets + 2 pipes x 2 ends).
    let open = wait_until(Duration::from_secs(5), || fd_count(agent) >= before + 50 * 6);
    assert!(open, "50 concurrent connections: agent has {} fds, baseline {before}", fd_count(agent));
    let answers: Vec<_> = conc
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.shutdown(Shutdown::Write).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut out = Vec::new();
            (&s).read_to_end(&mut out).unwrap();
            (i, out)
        })
        .collect();
    for (i, out) in answers {
        assert_eq!(out, reply_to("tcp", format!("c{i}").as_bytes()));
    }
    let settled = wait_until(Duration::from_secs(5), || fd_count(agent) == before);
    assert!(settled, "agent fds: {} after, {before} before", fd_count(agent));
    d.finish();
}

#[test]
fn a_failed_forwarder_is_restarted_by_the_tree() {
    let (d, id, a) = one_tcp_client("ozt-fwd-restart");
    let init = init_of(&d, id);
    let inside = Inside::new(init);
    let s = inside.run(|| TcpStream::connect("127.0.0.1:7001")).unwrap();
    assert_eq!(tcp_exchange(s, b"one"), b"tcp:one");
    // Destroy the listening socket from outside the agent (SOCK_DESTROY).
    let out = std::process::Command::new("nsenter")
        .args(["-t", &init.to_string(), "-n", "ss", "-K", "-t", "-l", "sport", "=", ":7001"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ss -K: {}", String::from_utf8_lossy(&out.stderr));
    let logs = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    let restarted = wait_until(Duration::from_secs(5), || {
        logs().lines().any(|l| l.contains("helper forward client tcp:7001") && l.contains("restart 1"))
    });
    assert!(restarted, "no restart logged:\n{}", logs());
    let again = wait_until(Duration::from_secs(5), || {
        inside.run(|| TcpStream::connect("127.0.0.1:7001")).is_ok_and(|s| tcp_exchange(s, b"two") == b"tcp:two")
    });
    assert!(again, "the forwarder did not come back:\n{}", logs());
    d.finish();
}

#[test]
fn killed_agent_leaves_no_forwarder_socket() {
    let port = free_port();
    let sockets = json!([
        {"type": "server", "proto": "tcp", "port": port, "dport": 8001},
        {"type": "server", "proto": "unix", "port": 8003, "destination": "/run/ozt-stream"},
    ]);
    let d = Daemon::start(&[forward_profile("ozt-fwd-kill", sockets)]);
    let id = d.launch(&user_a(), "ozt-fwd-kill", &["600"]);
    let agent = agent_of(&d, id);
    let dir = oz_wire::state::forward_dir(&d.ws.state_dir, id);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "the server forwarder listens");
    assert!(dir.join("unix-8003.sock").exists());
    common_daemon::procs::kill(agent, libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(2), || TcpStream::connect(("127.0.0.1", port)).is_err() && !dir.exists());
    assert!(
        gone,
        "forwarder sockets left 2 s after kill -9 of the agent: port open {}, {} exists {}",
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        dir.display(),
        dir.exists()
    );
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    d.finish();
}

#[test]
fn oz_forward_opens_an_external_forwarder_for_the_owner_only() {
    let ext = json!([{"name": "ozt-ext", "dynamic": true, "multi": true, "proto": "tcp", "extproto": "unix",
                      "targethost": "127.0.0.1", "targetport": 8080}]);
    let p = profile("ozt-fwd-ext", "/bin/sleep", json!({"networking": {"type": "empty"}, "external_forwarders": ext}));
    let d = Daemon::start(&[p]);
    let (a, b) = (user_a(), common_daemon::user_b());
    let id = d.launch(&a, "ozt-fwd-ext", &["600"]);
    let sid = id.to_string();
    let inside = Inside::new(init_of(&d, id));
    tcp_service(inside.run(|| TcpListener::bind("127.0.0.1:8080").unwrap()), "p8080");
    tcp_service(inside.run(|| TcpListener::bind("127.0.0.1:8081").unwrap()), "p8081");
    let dir = oz_wire::state::forward_dir(&d.ws.state_dir, id);
    let sockets = || std::fs::read_dir(&dir).map(|r| r.count()).unwrap_or(0);
    assert_eq!(sockets(), 0, "no external socket before oz forward");

    // Another user may neither open nor list the forwarders of a's sandbox.
    let denied = d.oz(&b, &["forward", &sid, "ozt-ext"]);
    assert!(!denied.status.success(), "user b opened a forwarder into a's sandbox: {denied:?}");
    assert!(!d.oz(&b, &["forwarders", &sid]).status.success(), "user b listed a's forwarders");
    assert_eq!(sockets(), 0, "a refused oz forward created a socket");
    let unknown = d.oz(&a, &["forward", &sid, "nope"]);
    assert!(!unknown.status.success() && unknown.stderr.contains("no external forwarder nope"), "{unknown:?}");

    let out = d.oz(&a, &["forward", &sid, "ozt-ext"]);
    out.assert_ok("oz forward", &d);
    let path = PathBuf::from(out.stdout.trim());
    assert!(path.starts_with(&dir), "{} outside {}", path.display(), dir.display());
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (a.uid, 0o600), "owned by the user, 0600");
    assert_eq!(unix_exchange(UnixStream::connect(&path).unwrap(), b"x"), b"p8080:x");
    let out = d.oz(&a, &["forward", &sid, "ozt-ext", "8081"]);
    out.assert_ok("oz forward with a port", &d);
    let other = PathBuf::from(out.stdout.trim());
    assert_eq!(unix_exchange(UnixStream::connect(&other).unwrap(), b"y"), b"p8081:y");

    let listed = d.oz(&a, &["forwarders", &sid, "--json"]);
    listed.assert_ok("oz forwarders", &d);
    let list: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["external ozt-ext:8080", "external ozt-ext:8081"], "{}", listed.stdout);
    assert!(list.iter().all(|f| f["state"] == "running"), "{}", listed.stdout);
    assert_eq!(list[0]["listen"].as_str().unwrap(), path.to_str().unwrap());
    assert_eq!(list[0]["target"], "127.0.0.1:8080");
    d.finish();
}

/// A client that writes a request in two pieces (with TCP_NODELAY, so it sends each at once)
/// gets its answer as fast through a forwarder as directly: the forwarder does not hold the
/// second piece until the first is acknowledged (Nagle) while the server, which answers only
/// a whole request, delays that acknowledgement.
#[test]
fn a_request_written_in_two_pieces_crosses_a_forwarder_without_waiting_for_an_ack() {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut piece = [0u8; 2];
                // Each request is two bytes; answer each whole one.
                while s.read_exact(&mut piece).is_ok() && s.write_all(b"ok").is_ok() {}
            });
        }
    });
    let sockets = json!([{"type": "client", "proto": "tcp", "port": 7001, "dport": port}]);
    let d = Daemon::start(&[forward_profile("ozt-fwd-nagle", sockets)]);
    let id = d.launch(&user_a(), "ozt-fwd-nagle", &["600"]);
    let inside = Inside::new(init_of(&d, id));
    let exchanges = |mut s: TcpStream| -> Duration {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut times = Vec::new();
        let mut answer = [0u8; 2];
        for _ in 0..40 {
            let t = std::time::Instant::now();
            s.write_all(b"a").unwrap();
            std::thread::sleep(Duration::from_millis(2));
            s.write_all(b"b").unwrap();
            s.read_exact(&mut answer).expect("an answer");
            times.push(t.elapsed());
        }
        // The first exchanges run before the server's side settles into delayed ACKs.
        let mut settled = times.split_off(10);
        settled.sort();
        settled[settled.len() / 2]
    };
    let direct = exchanges(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let forwarded = exchanges(inside.run(|| TcpStream::connect("127.0.0.1:7001")).expect("connect to the forwarder"));
    eprintln!("two-piece request: median {direct:?} direct, {forwarded:?} through the forwarder");
    assert!(
        forwarded < direct + Duration::from_millis(15),
        "through the forwarder a two-piece request takes {forwarded:?} (directly {direct:?})"
    );
    d.finish();
}
