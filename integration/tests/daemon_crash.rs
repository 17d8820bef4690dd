//! Daemon acceptance, crash resilience: sandboxes survive a SIGKILLed daemon and are re-adopted
//! with their ids; a SIGKILLed agent takes its sandbox down at once, leaking nothing, and the
//! daemon keeps serving.

mod common_daemon;

use common_daemon::procs::{self, Proc};
use common_daemon::{profile, user_a, wait_until, Daemon};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn sleeper() -> serde_json::Value {
    profile("ozt-sleep", "/bin/sleep", json!({"multi": true}))
}

/// The `sleep` program of a sandbox, found in its pid namespace.
fn program(d: &Daemon, id: u64) -> Proc {
    let init = d.tracked(id).init.expect("init tracked");
    let found = procs::pidns_members_named(init.pid, "sleep");
    assert_eq!(found.len(), 1, "sandbox {id}: one sleep program expected, found {found:?}");
    found[0]
}

#[test]
fn sandboxes_survive_a_killed_daemon_and_are_readopted() {
    let mut d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let ids: Vec<u64> = (0..5).map(|_| d.launch(&a, "ozt-sleep", &["600"])).collect();
    let before: BTreeMap<u64, (u64, Proc)> = ids
        .iter()
        .map(|&id| {
            let init = d.sandbox(id).unwrap().init_pid as u64;
            (id, (init, program(&d, id)))
        })
        .collect();
    assert_eq!(before.len(), 5, "five distinct sandboxes: {ids:?}");

    d.kill9();
    std::thread::sleep(Duration::from_millis(500));
    for (id, (_, prog)) in &before {
        assert!(prog.alive(), "sandbox {id}'s program died with the daemon");
    }
    d.spawn();
    // Re-adoption may take a moment after the socket is up.
    let readopted = wait_until(Duration::from_secs(5), || d.list_json(&a).len() == 5);
    let listed = d.list_json(&a);
    assert!(readopted, "after restart oz list shows {listed:?}\n{}", d.log_text());
    let after: BTreeMap<u64, u64> =
        listed.iter().map(|s| (s["id"].as_u64().unwrap(), s["init_pid"].as_u64().unwrap())).collect();
    let expected: BTreeMap<u64, u64> = before.iter().map(|(id, (init, _))| (*id, *init)).collect();
    assert_eq!(after, expected, "same ids and init pids after the restart");
    for (id, (_, prog)) in &before {
        assert!(prog.alive(), "sandbox {id}'s program stopped");
        assert_eq!(program(&d, *id), *prog, "sandbox {id}'s program was restarted");
    }
    // The re-adopted sandboxes are fully controllable.
    d.oz(&a, &["kill", &ids[0].to_string()]).assert_ok("oz kill after re-adoption", &d);
    d.wait_gone(ids[0], Duration::from_secs(5)).unwrap();
    d.finish();
}

#[test]
fn killed_agent_takes_its_sandbox_down_within_two_seconds() {
    let d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let victim = d.launch(&a, "ozt-sleep", &["600"]);
    let other = d.launch(&a, "ozt-sleep", &["600"]);
    let _ = program(&d, victim);
    let agent = d.tracked(victim).agent.expect("agent pid listed");
    procs::kill(agent.pid, libc::SIGKILL);
    d.wait_gone(victim, Duration::from_secs(2)).unwrap();
    let record = oz_wire::state::record_path(&d.ws.state_dir, victim);
    assert!(!record.exists(), "state record {} left behind", record.display());
    let sock = oz_wire::state::socket_path(&d.ws.state_dir, victim);
    assert!(!sock.exists(), "rendezvous socket {} left behind", sock.display());

    // The daemon keeps serving: the other sandbox is untouched and new launches work.
    assert!(d.sandbox(other).is_some(), "the other sandbox was torn down too");
    assert!(program(&d, other).alive());
    let third = d.launch(&a, "ozt-sleep", &["600"]);
    assert_ne!(third, victim);
    d.finish();
}

/// `oz list --json`'s object for sandbox `id`, as `user` sees it.
fn listed(d: &Daemon, user: &oz_integration::users::TestUser, id: u64) -> Option<serde_json::Value> {
    d.list_json(user).into_iter().find(|s| s["id"].as_u64() == Some(id))
}

/// A restarted daemon lists a sandbox exactly as before, from the record its agent keeps: the
/// mounts, the phase the agent's supervision decided (here lingering: the program exited and
/// `auto_shutdown: no` keeps the sandbox), the network and display fields, pids and start time.
#[test]
fn a_restarted_daemon_lists_the_whole_record_the_agent_keeps() {
    let a = user_a();
    let tree = common_daemon::inject::UserTree::new(&a, &oz_integration::env::unique("rec"), &["doc.txt"]);
    let file = tree.str("doc.txt");
    let p = profile("ozt-rec", "/bin/sh", json!({"auto_shutdown": "no", "networking": {"type": "empty"}}));
    let mut d = Daemon::start(&[p]);
    let id = d.launch(&a, "ozt-rec", &["-c", "exit 0"]);
    d.oz(&a, &["mount", &id.to_string(), &file]).assert_ok("oz mount", &d);
    let lingering = |d: &Daemon| listed(d, &a, id).is_some_and(|s| s["state"] == "lingering");
    assert!(wait_until(Duration::from_secs(5), || lingering(&d)), "not lingering: {:?}", listed(&d, &a, id));
    let before = listed(&d, &a, id).unwrap();
    assert_eq!(before["mounts"], json!([file]), "{before}");
    assert_eq!(before["network"], json!({"mode": "empty", "address": null, "forwarders": []}), "{before}");
    assert_eq!(before["display"], serde_json::Value::Null, "no X display: {before}");

    d.kill9();
    d.spawn();
    let back = wait_until(Duration::from_secs(5), || listed(&d, &a, id).is_some());
    assert!(back, "sandbox {id} not re-adopted\n{}", d.log_text());
    assert_eq!(listed(&d, &a, id).unwrap(), before, "the record after the restart\n{}", d.log_text());
    // The text listing still works and shows the same sandbox.
    let text = d.oz(&a, &["list"]);
    text.assert_ok("oz list", &d);
    let row = text.stdout.lines().find(|l| l.split_whitespace().next() == Some(&id.to_string()));
    let row = row.unwrap_or_else(|| panic!("sandbox {id} not in oz list: {}", text.stdout));
    assert!(row.contains("ozt-rec") && row.contains("lingering"), "{row}");
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    d.finish();
}
