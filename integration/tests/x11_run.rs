//! X profiles run in the foreground: `oz run` at a terminal with the xpra backend (the program's
//! output on the terminal, its exit status passed on), and `oz-agent standalone` with an X
//! profile (the display set up as under the daemon, or a clear refusal without a display).

mod common_daemon;
mod common_x11;

use common_daemon::run::command;
use common_daemon::{bin, profile, user_a, wait_until, Daemon};
use common_x11::*;
use oz_integration::env::TestEnv;
use oz_integration::pty::PtySession;
use serde_json::json;
use std::time::Duration;

fn xpra_sh(name: &str) -> serde_json::Value {
    profile(name, "/bin/sh", json!({"xserver": {"enabled": true, "backend": "xpra"}, "networking": {"type": "empty"}}))
}

/// What the sandboxed shell prints: its display, whether that display answers, whether it is
/// on a terminal.
const PROBE: &str = "echo DISPLAY=$DISPLAY; xwininfo -root >/dev/null 2>&1 && echo DISPLAY-ANSWERS; \
                     test -t 0 && test -t 1 && echo ON-A-TTY; exit 5";

#[test]
fn oz_run_at_a_terminal_with_xpra_passes_output_and_status() {
    let x = Xvfb::start();
    let d = Daemon::start(&[xpra_sh("ozt-xsh")]);
    let mut cmd = command(&bin("oz"), &d.socket, &user_a());
    cmd.env("DISPLAY", x.display()).args(["run", "ozt-xsh", "--", "-c", PROBE]);
    let mut s = PtySession::spawn(cmd, 100, 30).expect("oz run on a pty");
    let code = s.wait(Duration::from_secs(40)).unwrap();
    let out = s.output();
    assert_eq!(code, 5, "the program's exit status: {out}\n{}", d.log_text());
    assert!(out.contains("DISPLAY=:10"), "the sandbox's own display: {out}");
    assert!(out.contains("DISPLAY-ANSWERS"), "the program reaches its display: {out}");
    assert!(out.contains("ON-A-TTY"), "the program is on the terminal: {out}");
    assert!(wait_until(Duration::from_secs(10), || d.sandboxes().is_empty()), "{:?}", d.sandboxes());
    assert!(user_procs_named(user_a().uid, "xpra").is_empty(), "no xpra of the user left");
    d.finish();
}

#[test]
fn standalone_runs_the_x_stack_or_refuses_without_a_display() {
    let x = Xvfb::start();
    let env = TestEnv::new(json!({}));
    let p = env.profile("ozt-xsh", xpra_sh("ozt-xsh"));
    let out = env.agent(&p, &["-c", PROBE]).env("DISPLAY", &x.display()).run();
    assert_eq!(out.status, 5, "the program's exit status:\n{}", out.all());
    assert!(out.stdout.contains("DISPLAY=:10"), "{}", out.all());
    assert!(out.stdout.contains("DISPLAY-ANSWERS"), "the program reaches its display:\n{}", out.all());
    assert!(user_procs_named(env.user.uid, "xpra").is_empty(), "no xpra of the user left");

    let out = env.agent(&p, &["-c", PROBE]).run();
    assert_eq!(out.status, 125, "a setup failure:\n{}", out.all());
    assert!(out.stderr.contains("DISPLAY"), "names the missing DISPLAY:\n{}", out.all());
    assert!(!out.stdout.contains("DISPLAY="), "the program did not run:\n{}", out.all());
}
