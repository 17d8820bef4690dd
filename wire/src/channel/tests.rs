use super::*;
use crate::msg::{LogLevel, LogRecord};

fn channels() -> (AgentChannel, DaemonChannel) {
    let (a, b) = fdpass::seqpacket_pair().unwrap();
    (AgentChannel::new(a), DaemonChannel::new(b))
}

/// Both ends after a completed hello.
fn greeted() -> (AgentChannel, DaemonChannel) {
    let (daemon, agent) = channels();
    let t = std::thread::spawn(move || {
        agent.accept_hello(None, 1).unwrap();
        agent
    });
    daemon.hello().unwrap();
    (daemon, t.join().unwrap())
}

fn request(agent: &DaemonChannel) -> (RequestId, DaemonToAgent) {
    let (id, msg, _) = agent.recv_request().unwrap();
    (id, msg.unwrap())
}

#[test]
fn hello_then_ready_with_logs_in_between() {
    let (daemon, agent) = channels();
    let t = std::thread::spawn(move || {
        agent.accept_hello(None, 77).unwrap();
        let (id, msg) = request(&agent);
        assert_eq!(msg.kind(), "RunProgram");
        let log = LogRecord { ts: 1, level: LogLevel::Info, sandbox: Some(1), profile: None, message: "m".into() };
        agent.event(AgentToDaemon::Log(log), &[]).unwrap();
        agent.reply(id, AgentToDaemon::Ready { init_pid: 10, program_pid: Some(11) }, &[]).unwrap();
    });
    assert_eq!(daemon.hello().unwrap(), AgentHello { sandbox_id: None, agent_pid: 77 });
    let run = DaemonToAgent::RunProgram { args: vec![], cwd: None, caller_env: vec![], stdio: crate::StdioMode::Log };
    daemon.send(&run, &[]).unwrap();
    let mut logs = 0;
    let ready = daemon.wait_for_ready(&mut |m| logs += matches!(m, AgentToDaemon::Log(_)) as i32).unwrap();
    assert_eq!(ready, Ok((10, Some(11))));
    assert_eq!(logs, 1);
    assert!(daemon.outstanding.borrow().is_empty());
    t.join().unwrap();
}

#[test]
fn wrong_reply_is_unexpected_message() {
    let (daemon, agent) = greeted();
    agent.event(AgentToDaemon::Pong, &[]).unwrap();
    let err = daemon.wait_for_ready(&mut |_| {}).unwrap_err();
    match err {
        WireError::UnexpectedMessage { expected, received } => {
            assert_eq!((expected, received.as_str()), ("Ready", "Pong"))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn reply_of_the_wrong_kind_names_what_the_request_expects() {
    let (daemon, agent) = greeted();
    daemon.send(&DaemonToAgent::Umount { uid: 1, path: "/home/u/x".into() }, &[]).unwrap();
    let (id, _) = request(&agent);
    agent.reply(id, AgentToDaemon::Pong, &[]).unwrap();
    match daemon.recv().unwrap_err() {
        WireError::UnexpectedMessage { expected, received } => {
            assert_eq!((expected, received.as_str()), ("Unmounted", "Pong"))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn out_of_order_replies_are_matched_by_id() {
    let (daemon, agent) = greeted();
    let mount =
        daemon.send(&DaemonToAgent::Mount { uid: 1, paths: vec!["/home/u/a".into()], read_only: true }, &[]).unwrap();
    let ping = daemon.send(&DaemonToAgent::Ping, &[]).unwrap();
    assert_ne!(mount, ping);
    let (first, _) = request(&agent);
    let (second, _) = request(&agent);
    assert_eq!((first, second), (mount, ping));
    // The agent answers the later request first.
    agent.reply(ping, AgentToDaemon::Pong, &[]).unwrap();
    agent.reply(mount, AgentToDaemon::Mounted { paths: vec!["/home/u/a".into()] }, &[]).unwrap();
    let (a, _) = daemon.recv_message().unwrap();
    let (b, _) = daemon.recv_message().unwrap();
    assert_eq!((a.re, a.msg), (Some(ping), AgentToDaemon::Pong));
    assert_eq!(b.re, Some(mount));
    assert!(daemon.outstanding.borrow().is_empty());
}

#[test]
fn reply_to_an_unknown_id_is_refused() {
    let (daemon, agent) = greeted();
    let id = daemon.send(&DaemonToAgent::Ping, &[]).unwrap();
    agent.reply(RequestId(id.0 + 41), AgentToDaemon::Pong, &[]).unwrap();
    assert!(matches!(daemon.recv(), Err(WireError::UnknownRequest { id: 42, .. })), "id {id}");
    // A request is answered once: a second reply to it is refused too.
    agent.reply(id, AgentToDaemon::Pong, &[]).unwrap();
    agent.reply(id, AgentToDaemon::Pong, &[]).unwrap();
    assert_eq!(daemon.recv().unwrap().0, AgentToDaemon::Pong);
    assert!(matches!(daemon.recv(), Err(WireError::UnknownRequest { .. })));
}

#[test]
fn outstanding_requests_are_bounded() {
    let mut o = Outstanding::default();
    for _ in 0..3 {
        o.begin(RequestKind::Ping, 3).unwrap();
    }
    assert!(matches!(o.begin(RequestKind::Ping, 3), Err(WireError::TooManyRequests { outstanding: 3 })));
    o.complete(RequestId(2), &AgentToDaemon::Pong).unwrap();
    assert_eq!(o.begin(RequestKind::Ping, 3).unwrap(), RequestId(4));
}

#[test]
fn a_request_that_does_not_decode_keeps_its_id() {
    let (_daemon, agent) = greeted();
    let mut payload = 9u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0xee; 5]);
    let framed = frame::frame(&payload, u32::MAX).unwrap();
    fdpass::send_frame(_daemon.as_fd(), SocketKind::SeqPacket, &framed, &[]).unwrap();
    let (id, msg, _) = agent.recv_request().unwrap();
    assert_eq!(id, RequestId(9));
    assert!(matches!(msg, Err(WireError::Decode { .. })));
}

#[test]
fn version_mismatch_is_detected_on_both_sides() {
    let (daemon, agent) = channels();
    daemon.send(&DaemonToAgent::Hello { protocol_version: 99 }, &[]).unwrap();
    assert!(matches!(agent.accept_hello(None, 1), Err(WireError::VersionMismatch { theirs: 99, .. })));
    // The agent answered with its own version all the same.
    assert_eq!(daemon.wait_for_hello().unwrap().agent_pid, 1);
    let (daemon, agent) = channels();
    agent.sock.send(&AgentToDaemon::Hello { protocol_version: 98, sandbox_id: None, agent_pid: 1 }, &[]).unwrap();
    assert!(matches!(daemon.wait_for_hello(), Err(WireError::VersionMismatch { theirs: 98, .. })));
}

#[test]
fn a_protocol_1_frame_after_the_hello_is_a_version_mismatch() {
    // Protocol 1 had no envelopes: a bare hello where an envelope belongs names the old version.
    let old_hello = frame::encode(&DaemonToAgent::Hello { protocol_version: 1 }).unwrap();
    assert!(matches!(
        decode_request(&old_hello),
        Err(WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: 1 })
    ));
    let old_hello =
        frame::encode(&AgentToDaemon::Hello { protocol_version: 1, sandbox_id: Some(7), agent_pid: 3 }).unwrap();
    assert!(matches!(decode_message(&old_hello), Err(WireError::VersionMismatch { theirs: 1, .. })));
    let garbage = frame::encode(&DaemonToAgent::Ping).unwrap();
    assert!(matches!(decode_request(&garbage), Err(WireError::Decode { .. })));
}

#[test]
fn launch_failed_is_the_agents_error() {
    let (daemon, agent) = greeted();
    let id = daemon.send(&DaemonToAgent::Shutdown { reason: "x".into() }, &[]).unwrap();
    let _ = request(&agent);
    let e = AgentError::Exec { path: "/usr/bin/x".into(), errno: 2 };
    agent.reply(id, AgentToDaemon::Error(e.clone()), &[]).unwrap();
    assert_eq!(daemon.wait_for_ready(&mut |_| {}).unwrap(), Err(e.clone()));
    agent.event(AgentToDaemon::LaunchFailed(e.clone()), &[]).unwrap();
    assert_eq!(daemon.wait_for_ready(&mut |_| {}).unwrap(), Err(e));
}

#[test]
fn recv_timeout() {
    let (daemon, _agent) = channels();
    daemon.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert!(matches!(daemon.recv(), Err(WireError::Timeout)));
}

/// A protocol 3 agent as the previous release's binary behaves: it answers a hello of another
/// version with its own and gives up that connection; greeted in protocol 3 it sends its
/// protocol 3 record, which the daemon's end converts, and it is never sent a `Launch`.
#[test]
fn a_protocol_3_agent_is_greeted_in_its_protocol_and_its_record_converted() {
    let v3_agent = move |sock: &Socket, version_offered: u32| {
        let (payload, _) = sock.recv_payload().unwrap();
        let hello: DaemonToAgent = frame::decode(&payload).unwrap();
        assert_eq!(hello, DaemonToAgent::Hello { protocol_version: version_offered });
        sock.send(&v3::AgentToDaemon::Hello { protocol_version: 3, sandbox_id: Some(7), agent_pid: 40 }, &[]).unwrap();
    };
    let record = v3::SandboxRecord {
        id: 7,
        profile: "p".into(),
        uid: 1000,
        user: "u".into(),
        phase: crate::SandboxState::Running,
        init_pid: 41,
        agent_pid: 40,
        started_at: 5,
        mounts: vec!["/home/u/a".into()],
        network: None,
        display: None,
    };

    let (daemon, agent) = channels();
    let t = std::thread::spawn(move || v3_agent(&agent.sock, PROTOCOL_VERSION));
    let err = daemon.hello().unwrap_err();
    assert!(matches!(err, WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: 3 }), "{err}");
    t.join().unwrap();

    let (daemon, agent) = channels();
    let sent = record.clone();
    let t = std::thread::spawn(move || {
        v3_agent(&agent.sock, 3);
        agent.sock.send(&v3::AgentMessage { re: None, msg: v3::AgentToDaemon::State(sent) }, &[]).unwrap();
        let (payload, _) = agent.sock.recv_payload().unwrap();
        let ping: AgentRequest = frame::decode(&payload).unwrap();
        agent.sock.send(&v3::AgentMessage { re: Some(ping.id), msg: v3::AgentToDaemon::Pong }, &[]).unwrap();
    });
    assert_eq!(daemon.hello_as(3).unwrap(), AgentHello { sandbox_id: Some(7), agent_pid: 40 });
    assert_eq!(daemon.version(), 3);
    let state = daemon.wait_for_state(&mut |_| {}).unwrap();
    assert_eq!(state, crate::SandboxRecord::from(record));
    assert!(!state.ephemeral);
    let profile = oz_profiles::load::parse_profile(br#"{"path": "/bin/true"}"#, std::path::Path::new("p.json"));
    let launch = crate::LaunchSpec {
        sandbox_id: 7,
        profile: profile.unwrap().value,
        config: oz_profiles::Config::default(),
        uid: 1000,
        caller_env: vec![],
        args: vec![],
        cwd: None,
        noexec: false,
        stdio: crate::StdioMode::Log,
        ephemeral: false,
    };
    let err = daemon.send(&DaemonToAgent::Launch(launch), &[]).unwrap_err();
    assert_eq!(err.to_string(), "Launch is not a request an agent of protocol 3 understands");
    daemon.send(&DaemonToAgent::Ping, &[]).unwrap();
    assert_eq!(daemon.recv().unwrap().0, AgentToDaemon::Pong);
    t.join().unwrap();

    // Two versions back is refused before anything is sent.
    let (daemon, _agent) = channels();
    let err = daemon.hello_as(2).unwrap_err();
    assert!(matches!(err, WireError::AgentVersion { theirs: 2, oldest: 3, ours: PROTOCOL_VERSION }), "{err}");
}
