//! `oz-agent serve`: launch, output, exit, shutdown, daemon loss and re-adoption, failures.

mod serve_common;

use oz_wire::channel::AgentChannel;
use oz_wire::{AgentToDaemon, DaemonToAgent, ExitStatus, PROTOCOL_VERSION};
use serve_common::*;
use std::os::fd::OwnedFd;
use std::time::Duration;

#[test]
fn launch_logs_exit_and_shut_down_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(1);
    // An ignored missing whitelist item: the build goes on with a warning in the log.
    let extra = r#", "whitelist": [{"path": "${HOME}/oz-serve-no-such-item", "ignore": true}]"#;
    let spec = spec_with(id, tmp.path(), "echo hi; sleep 1", extra);
    let (mut child, chan) = spawn_agent();
    let (init_pid, program_pid) = hello_and_launch(&chan, &spec);
    assert!(program_pid.is_some());

    // While it runs, the record and the rendezvous socket exist.
    let rec = oz_wire::SandboxRecord::load(&oz_wire::state::record_path(tmp.path(), id)).unwrap();
    assert_eq!((rec.id, rec.init_pid, rec.agent_pid, rec.user.as_str()), (id, init_pid, child.id(), USER));
    assert!(oz_wire::state::socket_path(tmp.path(), id).exists());

    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    let logs: Vec<&str> = got
        .iter()
        .filter_map(|m| match m {
            AgentToDaemon::Log(r) => Some(r.message.as_str()),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&"hi"), "no 'hi' log line in {got:?}");
    assert!(
        got.iter().any(|m| matches!(m, AgentToDaemon::Log(r)
            if r.level == oz_wire::LogLevel::Warning && r.message.contains("oz-serve-no-such-item"))),
        "no build warning in {got:?}"
    );
    let exit = got.iter().position(|m| matches!(m, AgentToDaemon::ProgramExited { .. })).expect("ProgramExited");
    assert_eq!(got[exit], AgentToDaemon::ProgramExited { pid: program_pid.unwrap(), status: ExitStatus::Code(0) });
    let hi = got.iter().position(|m| matches!(m, AgentToDaemon::Log(r) if r.message == "hi")).unwrap();
    assert!(hi < exit, "output must precede the exit event: {got:?}");
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(st.success(), "agent exit: {st}");
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn daemon_loss_keeps_the_sandbox_and_rendezvous_readopts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(2);
    // The program exits while no daemon is attached; auto_shutdown no keeps the sandbox.
    let spec = spec_with(id, tmp.path(), "sleep 1; exit 5", r#", "auto_shutdown": "no""#);
    let (mut child, chan) = spawn_agent();
    let (init_pid, program_pid) = hello_and_launch(&chan, &spec);

    // The daemon "dies".
    drop(chan);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "agent died with its daemon");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid as i32), None).is_ok());

    // A new daemon reconnects.
    let sock = oz_wire::state::socket_path(tmp.path(), id);
    let fd: OwnedFd = oz_agent::agent::rendezvous::connect(&sock).unwrap();
    let chan = AgentChannel::new(fd);
    chan.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = chan.hello().unwrap();
    assert_eq!(hello.sandbox_id, Some(id));
    assert_eq!(hello.agent_pid, child.id());
    let rec = chan.wait_for_state(&mut |_| {}).unwrap();
    assert_eq!((rec.id, rec.init_pid, rec.profile.as_str()), (id, init_pid, "serve-test"));
    // What happened meanwhile is not lost.
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ProgramExited { .. }));
    assert_eq!(
        got.last().unwrap(),
        &AgentToDaemon::ProgramExited { pid: program_pid.unwrap(), status: ExitStatus::Code(5) }
    );

    // It is fully served: ping, then shut it down.
    chan.send(&DaemonToAgent::Ping, &[]).unwrap();
    collect(&chan, |m| matches!(m, AgentToDaemon::Pong));
    chan.send(&DaemonToAgent::Shutdown { reason: "test".into() }, &[]).unwrap();
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    match got.last().unwrap() {
        AgentToDaemon::ShuttingDown { reason } => assert!(reason.contains("test"), "{reason}"),
        _ => unreachable!(),
    }
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(st.success(), "agent exit: {st}");
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn launch_failure_is_reported_and_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(3);
    let mut spec = spec(id, tmp.path(), "true");
    spec.profile.path = "/nonexistent/oz-no-such-program".into();
    let (mut child, chan) = spawn_agent();
    chan.hello().unwrap();
    chan.send(&DaemonToAgent::Launch(spec), &[]).unwrap();
    let res = chan.wait_for_ready(&mut |_| {}).unwrap();
    let err = res.expect_err("launch of a missing program must fail");
    assert!(err.to_string().contains("oz-no-such-program"), "{err}");
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(!st.success());
    let left = std::fs::read_dir(tmp.path().join("agents")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
}

#[test]
fn wrong_protocol_version_is_refused() {
    let (mut child, chan) = spawn_agent();
    chan.send(&DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION + 100 }, &[]).unwrap();
    // The agent answers with its own version (so the daemon can name the mismatch) and exits.
    assert_eq!(chan.wait_for_hello().unwrap().sandbox_id, None);
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(!st.success());
}

#[test]
fn sigterm_to_the_agent_shuts_the_sandbox_down_and_garbage_is_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(4);
    let spec = spec(id, tmp.path(), "exec sleep 60");
    let (mut child, chan) = spawn_agent();
    let (init_pid, _) = hello_and_launch(&chan, &spec);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    assert!(comm.starts_with("oz-agent["), "agent named {comm:?}");
    let init_comm = std::fs::read_to_string(format!("/proc/{init_pid}/comm")).unwrap();
    assert!(init_comm.starts_with("oz-init["), "init named {init_comm:?}");

    // A garbage packet is answered with an error; the agent keeps serving.
    let raw = std::os::fd::AsFd::as_fd(&chan);
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&raw),
        &[0, 0, 0, 3, 0xff, 0xff, 0xff],
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    assert!(matches!(collect(&chan, |m| matches!(m, AgentToDaemon::Error(_))).last(), Some(AgentToDaemon::Error(_))));
    chan.send(&DaemonToAgent::Ping, &[]).unwrap();
    collect(&chan, |m| matches!(m, AgentToDaemon::Pong));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    match got.last().unwrap() {
        AgentToDaemon::ShuttingDown { reason } => assert!(reason.contains("SIGTERM"), "{reason}"),
        _ => unreachable!(),
    }
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn unusable_state_dir_fails_the_launch_and_kills_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(5);
    // Someone else owns <state_dir>/agents: the agent must not trust it.
    let agents = tmp.path().join("agents");
    std::fs::create_dir(&agents).unwrap();
    nix::unistd::chown(&agents, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let (mut child, chan) = spawn_agent();
    chan.hello().unwrap();
    chan.send(&DaemonToAgent::Launch(spec(id, tmp.path(), "exec sleep 60")), &[]).unwrap();
    let err = chan.wait_for_ready(&mut |_| {}).unwrap().expect_err("launch must fail");
    assert!(err.to_string().contains("not a directory owned by root"), "{err}");
    assert!(!wait_exit(&mut child, Duration::from_secs(10)).success());
    assert_eq!(std::fs::read_dir(&agents).unwrap().count(), 0);
    // No process is left in the sandbox's cgroup (the init was born inside it).
    let ours = format!("/oz/{id}\n");
    let init_left = std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()).any(|e| {
        std::fs::read_to_string(e.path().join("cgroup"))
            .is_ok_and(|c| c.lines().any(|l| format!("{l}\n").ends_with(&ours)))
    });
    assert!(!init_left, "an init of sandbox {id} survived");
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let c = e.unwrap().path().join("oz").join(id.to_string());
        assert!(!c.exists(), "cgroup {} left behind", c.display());
    }
}
