//! systemd socket activation, through systemd's own `systemd-socket-activate`: the daemon
//! serves on the listening socket it is handed, and refuses one that is not a unix stream
//! socket at its configured path, with an error saying why.

use oz_integration::bins::bin;
use oz_integration::workspace::Workspace;
use oz_wire::client::Client;
use oz_wire::{ClientRequest, DaemonReply};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// `systemd-socket-activate [extra] -l SOCKET oz-daemon --config WS`: it binds the socket,
/// waits for the first connection, then execs the daemon with LISTEN_FDS=1 (same pid).
fn activate(ws: &Workspace, socket: &Path, extra: &[&str]) -> Child {
    assert!(Path::new(ACTIVATE).exists(), "{ACTIVATE} missing (apt package systemd)");
    Command::new(ACTIVATE)
        .args(extra)
        .arg("-l")
        .arg(socket)
        .arg(bin("oz-daemon"))
        .arg("--config")
        .arg(&ws.config)
        .env_remove("OZ_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate")
}

fn wait_for(path: &Path) {
    let end = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: Child) -> String {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Wait up to 10 s for the daemon to exit by itself; a daemon still running then is killed and
/// fails the test (it went on without the socket it was handed).
fn exited(mut child: Child) -> std::process::Output {
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= end {
            let log = stop(child);
            panic!("the daemon kept running with a socket it should refuse:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serves_on_the_socket_systemd_passes() {
    let ws = Workspace::new(json!({"agent_path": bin("oz-agent")})).unwrap();
    let socket = ws.state_dir.join("control.sock");
    let child = activate(&ws, &socket, &[]);
    wait_for(&socket);
    let mut c = Client::connect(&socket).expect("connect to the activated socket");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reply = c.call(&ClientRequest::ListProfiles);
    let log = stop(child);
    assert!(matches!(reply, Ok(DaemonReply::Profiles(_))), "{reply:?}\n{log}");
    assert!(log.contains("Execing"), "the daemon was socket-activated:\n{log}");
    assert!(socket.exists(), "the socket systemd made stays for the next activation");
}

#[test]
fn refuses_a_datagram_socket_and_a_socket_at_another_path() {
    let ws = Workspace::new(json!({"agent_path": bin("oz-agent")})).unwrap();
    let socket = ws.state_dir.join("control.sock");
    let child = activate(&ws, &socket, &["--datagram"]);
    wait_for(&socket);
    let poke = std::os::unix::net::UnixDatagram::unbound().unwrap();
    poke.send_to(b"x", &socket).unwrap();
    let out = exited(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("not a stream socket"), "{err}");

    let other = ws.state_dir.join("elsewhere.sock");
    let child = activate(&ws, &other, &[]);
    wait_for(&other);
    let _ = std::os::unix::net::UnixStream::connect(&other);
    let out = exited(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("bound to {}, but socket_path in oz.conf is {}", other.display(), socket.display())),
        "{err}"
    );
}
