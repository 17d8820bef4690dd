//! Every message round-trips; checked-in fixtures pin the encoding (regenerate deliberately with
//! `OZ_UPDATE_FIXTURES=1 cargo test -p oz-wire --test messages`); garbage never panics.

mod samples;

use oz_wire::frame::{self, DEFAULT_MAX_FRAME};
use oz_wire::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(msgs: &[(&str, T)]) {
    for (name, msg) in msgs {
        let bytes = frame::encode_frame(msg, DEFAULT_MAX_FRAME).unwrap();
        let back: T = frame::decode_frame(&bytes, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&back, msg, "{name}");
        let back: T = frame::read_frame(&mut &bytes[..], DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(&back, msg, "{name}");
    }
}

#[test]
fn every_variant_round_trips() {
    round_trip(&samples::client_requests());
    round_trip(&samples::daemon_replies());
    round_trip(&samples::daemon_to_agent());
    round_trip(&samples::agent_to_daemon());
    round_trip(&samples::agent_requests());
    round_trip(&samples::agent_messages());
    round_trip(&samples::control_requests());
    round_trip(&samples::control_replies());
}

#[test]
fn launch_spec_round_trips() {
    let loaded =
        oz_profiles::load::parse_profile(br#"{"path": "/usr/bin/true", "multi": true}"#, Path::new("t.json")).unwrap();
    let mut profile = loaded.value;
    profile.profile_path = None; // not sent: `#[serde(skip)]`
    let spec = LaunchSpec {
        sandbox_id: 9,
        profile,
        config: oz_profiles::Config::default(),
        uid: 1000,
        caller_env: vec![("HOME".into(), "/home/alice".into())],
        args: vec!["-v".into()],
        cwd: Some("/home/alice".into()),
        noexec: false,
        stdio: StdioMode::Attached,
        ephemeral: true,
    };
    round_trip(&[("launch", DaemonToAgent::Launch(spec))]);
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Compare (or with OZ_UPDATE_FIXTURES=1 write) `<name>.bin` = the full frame of `msg`, and check
/// that the stored bytes still decode to `msg`.
fn check_fixtures<T: Serialize + DeserializeOwned + PartialEq + Debug>(msgs: &[(&str, T)]) {
    let update = std::env::var_os("OZ_UPDATE_FIXTURES").is_some_and(|v| v == "1");
    let mut seen = std::collections::HashSet::new();
    for (name, msg) in msgs {
        if !seen.insert(*name) {
            continue; // one fixture per name (error variants repeat names)
        }
        let path = fixtures_dir().join(format!("{name}.bin"));
        let bytes = frame::encode_frame(msg, DEFAULT_MAX_FRAME).unwrap();
        if update {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with OZ_UPDATE_FIXTURES=1 to create)", path.display()));
        let decoded: T = frame::decode_frame(&stored, DEFAULT_MAX_FRAME)
            .unwrap_or_else(|e| panic!("{}: no longer decodes: {e}", path.display()));
        assert_eq!(&decoded, msg, "{}: decodes to a different message", path.display());
        assert_eq!(stored, bytes, "{}: encoding changed", path.display());
    }
}

#[test]
fn encodings_match_checked_in_fixtures() {
    check_fixtures(&samples::client_requests());
    check_fixtures(&samples::daemon_replies());
    check_fixtures(&samples::daemon_to_agent());
    check_fixtures(&samples::agent_to_daemon());
    check_fixtures(&samples::agent_requests());
    check_fixtures(&samples::agent_messages());
    check_fixtures(&samples::control_requests());
    check_fixtures(&samples::control_replies());
    check_fixtures(&samples::agent_to_daemon_v3());
    check_fixtures(&samples::agent_messages_v3());
}

fn payload(name: &str) -> Vec<u8> {
    let stored = std::fs::read(fixtures_dir().join(format!("{name}.bin"))).unwrap();
    frame::unframe(&stored, DEFAULT_MAX_FRAME).unwrap().to_vec()
}

/// Every older hello (bare, whose encoding never changes) still decodes and is refused with a
/// version error naming its version.
#[test]
fn older_hellos_still_decode_and_get_a_version_mismatch() {
    for (suffix, theirs) in [("", 1), ("_v2", 2), ("_v3", 3)] {
        let mismatch = |r: Result<(), WireError>| matches!(r, Err(WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: t }) if t == theirs);
        let ClientRequest::Hello { protocol_version } =
            frame::decode(&payload(&format!("client_hello{suffix}"))).unwrap()
        else {
            panic!()
        };
        assert!(mismatch(check_version(protocol_version)), "client_hello{suffix}");
        let DaemonReply::Hello { protocol_version, .. } =
            frame::decode(&payload(&format!("reply_hello{suffix}"))).unwrap()
        else {
            panic!()
        };
        assert!(mismatch(check_version(protocol_version)), "reply_hello{suffix}");
        let DaemonToAgent::Hello { protocol_version } = frame::decode(&payload(&format!("d2a_hello{suffix}"))).unwrap()
        else {
            panic!()
        };
        assert!(mismatch(check_version(protocol_version)), "d2a_hello{suffix}");
        // Where an envelope is expected, an older hello is named as such.
        let err = oz_wire::channel::decode_request(&payload(&format!("d2a_hello{suffix}"))).unwrap_err();
        assert!(mismatch(Err(err)), "d2a_hello{suffix} as an envelope");
        let err = oz_wire::channel::decode_control_request(&payload(&format!("client_hello{suffix}"))).unwrap_err();
        assert!(mismatch(Err(err)), "client_hello{suffix} as an envelope");
        let err = oz_wire::channel::decode_control_reply(&payload(&format!("reply_hello{suffix}"))).unwrap_err();
        assert!(mismatch(Err(err)), "reply_hello{suffix} as an envelope");
    }
    let err = oz_wire::channel::decode_message(&payload("a2d_hello_rendezvous")).unwrap_err();
    assert!(matches!(err, WireError::VersionMismatch { theirs: 1, .. }), "{err}");
    let err = oz_wire::channel::decode_message(&payload("a2d_hello_v2")).unwrap_err();
    assert!(matches!(err, WireError::VersionMismatch { theirs: 2, .. }), "{err}");
}

/// The daemon manages agents of the previous protocol: a protocol 3 agent's hello and its
/// `State` record (whose encoding changed in 4) decode in the daemon's path and convert to the
/// current record; an agent two versions back is refused with a version error naming the range.
#[test]
fn a_protocol_3_agent_is_managed_and_a_protocol_2_agent_refused() {
    let AgentToDaemon::Hello { protocol_version, sandbox_id, .. } = frame::decode(&payload("a2d_hello_v3")).unwrap()
    else {
        panic!("a2d_hello_v3 is not a hello")
    };
    assert_eq!((protocol_version, sandbox_id), (3, Some(7)));
    assert!(matches!(check_version(3), Err(WireError::VersionMismatch { ours: 4, theirs: 3 })));
    assert_eq!(check_agent_version(protocol_version).unwrap(), 3);

    let state = payload("a2d_env_state_v3");
    assert!(oz_wire::channel::decode_message(&state).is_err(), "a protocol 3 record passed for a protocol 4 one");
    let env = oz_wire::channel::decode_message_of(3, &state).unwrap();
    let expected = SandboxRecord { ephemeral: false, ..samples::sandbox_record() };
    assert_eq!(env, AgentMessage { re: None, msg: AgentToDaemon::State(expected) });
    // Every other agent message of protocol 3 encodes as in 4 and decodes the same either way.
    for (name, msg) in samples::agent_messages() {
        if matches!(msg.msg, AgentToDaemon::State(_)) {
            continue;
        }
        let bytes = frame::encode(&msg).unwrap();
        assert_eq!(oz_wire::channel::decode_message_of(3, &bytes).unwrap(), msg, "{name}");
    }
    // The current record as a protocol 3 agent would send it does not decode as protocol 3.
    assert!(oz_wire::channel::decode_message_of(3, &payload("a2d_env_state_v4")).is_err());

    let AgentToDaemon::Hello { protocol_version, .. } = frame::decode(&payload("a2d_hello_v2")).unwrap() else {
        panic!("a2d_hello_v2 is not a hello")
    };
    let err = check_agent_version(protocol_version).unwrap_err();
    assert!(matches!(err, WireError::AgentVersion { theirs: 2, oldest: 3, ours: 4 }), "{err}");
    assert_eq!(err.to_string(), "agent speaks protocol 2: this daemon manages agents of protocol 3 to 4");
    assert!(check_agent_version(5).is_err(), "a newer agent than the daemon");
}

/// Protocol 2 messages whose encoding changed in 3 (the sandbox record) do not decode as
/// protocol 3 ones: a peer of protocol 2 is refused at its hello before it could send them.
#[test]
fn protocol_2_records_do_not_pass_for_protocol_3_ones() {
    assert!(frame::decode::<DaemonReply>(&payload("reply_sandboxes")).is_err());
    assert!(frame::decode::<AgentToDaemon>(&payload("a2d_state")).is_err());
    assert!(oz_wire::channel::decode_message(&payload("a2d_env_state")).is_err());
    assert!(oz_wire::channel::decode_message_of(3, &payload("a2d_env_state")).is_err());
    // The protocol 3 listing (clients of protocol 3 are refused at their hello) keeps its bytes.
    let (variant, records): (u32, Vec<v3::SandboxRecord>) = frame::decode(&payload("reply_sandboxes_v3")).unwrap();
    assert_eq!((variant, records), (3, vec![samples::sandbox_record_v3()]));
    assert!(frame::decode::<DaemonReply>(&payload("reply_sandboxes_v3")).is_err());
}

#[test]
fn fixtures_byte_layout_is_documented_bincode() {
    // PROTOCOL.md's worked example: Kill { target: Id(7) }
    let bytes = std::fs::read(fixtures_dir().join("client_kill_id.bin")).unwrap();
    let expected: Vec<u8> = [
        &[0u8, 0, 0, 16][..],      // frame length, big-endian
        &[4, 0, 0, 0],             // ClientRequest variant 4 = Kill (u32 LE)
        &[0, 0, 0, 0],             // KillTarget variant 0 = Id
        &[7, 0, 0, 0, 0, 0, 0, 0], // u64 LE
    ]
    .concat();
    assert_eq!(bytes, expected);
    // PROTOCOL.md's control envelope example: ControlRequest { id: 5, msg: Ping }
    let bytes = std::fs::read(fixtures_dir().join("client_env_ping.bin")).unwrap();
    let expected: Vec<u8> = [&[0u8, 0, 0, 12][..], &[5, 0, 0, 0, 0, 0, 0, 0], &[10, 0, 0, 0]].concat();
    assert_eq!(bytes, expected);
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn decode_all(buf: &[u8]) {
    let _ = frame::decode::<ClientRequest>(buf);
    let _ = frame::decode::<DaemonReply>(buf);
    let _ = frame::decode::<DaemonToAgent>(buf);
    let _ = frame::decode::<AgentToDaemon>(buf);
    let _ = frame::decode::<ControlRequest>(buf);
    let _ = frame::decode::<ControlReply>(buf);
    let _ = frame::decode_frame::<ClientRequest>(buf, DEFAULT_MAX_FRAME);
    let _ = frame::read_frame::<_, AgentToDaemon>(&mut &buf[..], DEFAULT_MAX_FRAME);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..10_000 {
        let len = (rng.next() % 256) as usize;
        decode_all(&rng.bytes(len));
    }
}

#[test]
fn mutated_valid_messages_never_panic() {
    let mut rng = Rng(42);
    let mut valid: Vec<Vec<u8>> = Vec::new();
    valid.extend(samples::client_requests().iter().map(|(_, m)| frame::encode(m).unwrap()));
    valid.extend(samples::daemon_replies().iter().map(|(_, m)| frame::encode(m).unwrap()));
    valid.extend(samples::agent_to_daemon().iter().map(|(_, m)| frame::encode(m).unwrap()));
    for i in 0..10_000 {
        let mut buf = valid[i % valid.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % buf.len();
            buf[at] = rng.next() as u8;
        }
        if rng.next() & 3 == 0 {
            buf.truncate((rng.next() as usize) % buf.len());
        }
        decode_all(&buf);
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (name, msg) in samples::daemon_replies() {
        let bytes = frame::encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert!(frame::decode::<DaemonReply>(&bytes[..cut]).is_err(), "{name} cut at {cut}");
        }
    }
}

#[test]
fn exit_status_shell_code() {
    assert_eq!(ExitStatus::Code(3).shell_code(), 3);
    assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
}

#[test]
fn error_messages_are_lowercase_and_name_the_object() {
    for e in samples::daemon_errors() {
        let s = e.to_string();
        assert!(!s.chars().next().unwrap().is_uppercase() && !s.ends_with('.'), "{s}");
    }
    for e in samples::agent_errors() {
        let s = e.to_string();
        assert!(!s.chars().next().unwrap().is_uppercase() && !s.ends_with('.'), "{s}");
    }
    assert_eq!(
        AgentError::Mount { path: "/home/u/x".into(), errno: 2 }.to_string(),
        "mount /home/u/x: ENOENT: No such file or directory"
    );
}

#[test]
fn os_errors_are_shown_with_their_text() {
    for e in samples::agent_errors().into_iter().chain(samples::daemon_errors().into_iter().filter_map(|e| match e {
        DaemonError::Agent { error, .. } => Some(error),
        _ => None,
    })) {
        let s = e.to_string();
        assert!(!s.contains("errno"), "{s}");
    }
    assert_eq!(
        AgentError::Exec { path: "/usr/bin/x".into(), errno: 13 }.to_string(),
        "exec /usr/bin/x: EACCES: Permission denied"
    );
    assert_eq!(AgentError::Pty { errno: 100_000 }.to_string(), "pty: unknown error 100000");
}
