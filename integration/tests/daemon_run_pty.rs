//! `oz run` at a terminal: the program gets a pty of the sandbox's own devpts as its
//! controlling terminal (window size, resizes, job control, exit status); without a terminal
//! the caller's fds are passed as they are.

mod common_daemon;

use common_daemon::run::command;
use common_daemon::{bin, profile, user_a, wait_until, Daemon};
use oz_integration::pty::PtySession;
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn sh() -> serde_json::Value {
    profile("ozt-sh", "/bin/sh", json!({"multi": true}))
}

/// `oz run ozt-sh -- ARGS` as user a on a new terminal of `cols` x `rows`.
fn run_on_pty(d: &Daemon, args: &[&str], cols: u16, rows: u16) -> PtySession {
    let mut cmd = command(&bin("oz"), &d.socket, &user_a());
    cmd.args(["run", "ozt-sh", "--"]).args(args);
    PtySession::spawn(cmd, cols, rows).expect("oz run on a pty")
}

fn finish(d: Daemon) {
    assert!(wait_until(Duration::from_secs(5), || d.sandboxes().is_empty()), "{:?}", d.sandboxes());
    d.finish();
}

#[test]
fn run_at_a_terminal_gets_a_sandbox_pty_of_the_terminals_size() {
    let d = Daemon::start(&[sh()]);
    let script = "echo TTY=$(tty); echo SIZE=$(stty size); test -t 0 && test -t 2 && echo ALL-TTY";
    let mut s = run_on_pty(&d, &["-c", script], 100, 30);
    let code = s.wait(LIMIT).unwrap();
    let out = s.output();
    assert_eq!(code, 0, "{out}\n{}", d.log_text());
    assert!(out.contains("TTY=/dev/pts/"), "tty names a pty of the sandbox's devpts: {out}");
    assert!(out.contains("SIZE=30 100"), "the pty has the terminal's size: {out}");
    assert!(out.contains("ALL-TTY"), "stdin and stderr are the pty too: {out}");
    finish(d);
}

#[test]
fn run_at_a_terminal_forwards_resizes() {
    let d = Daemon::start(&[sh()]);
    // Ends on the first SIGWINCH (after printing the new size), else after ~5 s with 9.
    let script = "trap 'echo RESIZED=$(stty size); exit 0' WINCH; echo READY; i=0; \
                  while [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; exit 9";
    let mut s = run_on_pty(&d, &["-c", script], 80, 24);
    s.wait_for("READY", LIMIT).unwrap();
    s.resize(132, 40).unwrap();
    let code = s.wait(LIMIT).unwrap();
    let out = s.output();
    assert_eq!(code, 0, "the program got SIGWINCH: {out}");
    assert!(out.contains("RESIZED=40 132"), "the sandbox's pty took the new size: {out}");
    finish(d);
}

#[test]
fn run_at_a_terminal_has_job_control_and_the_programs_status() {
    let d = Daemon::start(&[sh()]);
    let mut s = run_on_pty(&d, &["-i"], 80, 24);
    // Typed only at the prompt: going raw, `oz run` flushes what was typed before.
    s.wait_for("$ ", LIMIT).unwrap();
    s.write(b"case $- in *m*) x=ON;; *) x=OFF;; esac; echo \"JOBCONTROL_$x\"\n").unwrap();
    s.write(b"sleep 30 & echo BG=$!\n").unwrap();
    // SIGKILL: a job signalled right after the fork may still ignore SIGTERM as the shell does.
    s.write(b"jobs; kill -KILL %1; wait; echo WAITED\n").unwrap();
    s.write(b"exit 7\n").unwrap();
    let code = s.wait(LIMIT).unwrap();
    let out = s.output();
    assert!(!out.contains("job control turned off"), "the shell has a controlling terminal: {out}");
    assert!(out.contains("JOBCONTROL_ON"), "monitor mode is on: {out}");
    assert!(out.contains("Running") && out.contains("WAITED"), "a background job was listed and waited for: {out}");
    assert_eq!(code, 7, "exit code of the program: {out}");

    let mut s = run_on_pty(&d, &["-c", "kill -9 $$"], 80, 24);
    let code = s.wait(LIMIT).unwrap();
    assert_eq!(code, 137, "128 + SIGKILL: {}", s.output());
    finish(d);
}

#[test]
fn run_without_a_terminal_passes_the_callers_pipes() {
    let d = Daemon::start(&[sh()]);
    let a = user_a();
    let script =
        "read line; echo got:$line; test -t 0 || echo in-notty; readlink /proc/self/fd/1 | cut -d: -f1; exit 4";
    let out = d.oz_input(&a, &["run", "ozt-sh", "--", "-c", script], b"abc\n", LIMIT);
    assert_eq!(out.code(), 4, "{out:?}");
    assert_eq!(out.stdout, "got:abc\nin-notty\npipe\n", "{out:?}");
    finish(d);
}
