use super::*;

fn policy(auto: bool, watchdogs: &[&str]) -> Policy {
    Policy { auto_shutdown: auto, watchdogs: watchdogs.iter().map(|s| s.to_string()).collect() }
}

/// Run a sequence of events, returning the final state and every action.
fn run(policy: &Policy, events: &[Event]) -> (State, Vec<Action>) {
    let mut s = State::new();
    let mut actions = Vec::new();
    for e in events {
        let (n, a) = next(&s, policy, e);
        s = n;
        actions.push(a);
    }
    (s, actions)
}

fn started(pid: i32) -> Event {
    Event::ProgramStarted { pid }
}
fn exited(pid: i32) -> Event {
    Event::ProgramExited { pid }
}
fn scan(names: &[&str]) -> Event {
    Event::WatchdogScan { alive: names.iter().map(|s| s.to_string()).collect() }
}

#[test]
fn no_watchdog_auto_yes_shuts_down_when_program_exits() {
    let (s, a) = run(&policy(true, &[]), &[started(10), exited(10)]);
    assert_eq!(a, vec![Action::KeepRunning, Action::Shutdown(ShutdownReason::ProgramExited)]);
    assert_eq!(s.phase, Phase::ShuttingDown(ShutdownReason::ProgramExited));
    assert!(s.is_stopping());
}

#[test]
fn no_watchdog_auto_no_keeps_running_until_killed() {
    let p = policy(false, &[]);
    let (s, a) = run(&p, &[started(10), exited(10), Event::Tick, Event::ProcessExited { comm: "x".into() }]);
    assert_eq!(a, vec![Action::KeepRunning; 4]);
    assert_eq!(s.phase, Phase::Lingering);
    let (s, a) = next(&s, &p, &Event::ShutdownRequested { reason: "kill".into() });
    assert_eq!(a, Action::Shutdown(ShutdownReason::Requested("kill".into())));
    assert!(s.is_stopping());
}

#[test]
fn watchdogs_with_auto_no_never_scan() {
    let (s, a) = run(&policy(false, &["dog"]), &[started(10), exited(10), Event::Tick]);
    assert_eq!(a, vec![Action::KeepRunning; 3]);
    assert_eq!(s.phase, Phase::Lingering);
}

#[test]
fn program_exit_with_watchdogs_asks_for_a_scan() {
    let (_, a) = run(&policy(true, &["dog"]), &[started(10), exited(10)]);
    assert_eq!(a[1], Action::ScanWatchdogs);
}

#[test]
fn watchdog_alive_keeps_the_sandbox() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), exited(10), scan(&["sh", "dog"])]);
    assert_eq!(a[2], Action::KeepRunning);
    assert_eq!(s.phase, Phase::Watchdog);
}

#[test]
fn watchdog_matches_argv0_basename() {
    let p = policy(true, &["dog"]);
    let (s, _) = run(&p, &[started(10), exited(10), scan(&["/usr/bin/dog"])]);
    assert_eq!(s.phase, Phase::Watchdog);
    assert!(!p.is_watchdog("doggy"));
    assert!(!p.is_watchdog("/dog/cat"));
}

#[test]
fn no_watchdog_alive_shuts_down_after_confirmation() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), exited(10), scan(&["sh", "cat"]), Event::Tick, scan(&["sh", "cat"])]);
    assert_eq!(a[2], Action::RescanSoon);
    assert_eq!(a[3], Action::ScanWatchdogs);
    assert_eq!(a[4], Action::Shutdown(ShutdownReason::ProgramExited));
    assert!(s.is_stopping());
}

#[test]
fn an_empty_sandbox_needs_no_confirmation() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), exited(10), scan(&[])]);
    assert_eq!(a[2], Action::Shutdown(ShutdownReason::ProgramExited));
    assert!(s.is_stopping());
}

#[test]
fn a_watchdog_that_execs_late_is_found_by_the_confirmation() {
    // The program forked a child that had not exec'd `dog` yet at the first scan.
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), exited(10), scan(&["sh"]), Event::Tick, scan(&["dog"])]);
    assert_eq!(a[2], Action::RescanSoon);
    assert_eq!(a[4], Action::KeepRunning);
    assert_eq!(s.phase, Phase::Watchdog);
    // ... and when it is gone, the reason says so.
    let (s, a) = next(&s, &p, &Event::ProcessExited { comm: "dog".into() });
    assert_eq!(a, Action::ScanWatchdogs);
    let (s, a) = next(&s, &p, &scan(&["helper"]));
    assert_eq!((a, &s.phase), (Action::RescanSoon, &Phase::Confirming { after_watchdog: true }));
    let (_, a) = next(&s, &p, &scan(&["helper"]));
    assert_eq!(a, Action::Shutdown(ShutdownReason::WatchdogsGone));
}

#[test]
fn watchdog_exiting_later_shuts_down() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(
        &p,
        &[
            started(10),
            exited(10),
            scan(&["dog"]),
            Event::ProcessExited { comm: "helper".into() },
            scan(&["dog"]),
            Event::ProcessExited { comm: "dog".into() },
            scan(&[]),
        ],
    );
    assert_eq!(a[3], Action::ScanWatchdogs);
    assert_eq!(a[4], Action::KeepRunning);
    assert_eq!(a[5], Action::ScanWatchdogs);
    assert_eq!(a[6], Action::Shutdown(ShutdownReason::WatchdogsGone));
    assert_eq!(s.phase, Phase::ShuttingDown(ShutdownReason::WatchdogsGone));
}

#[test]
fn periodic_tick_scans_in_watchdog_phase() {
    let p = policy(true, &["dog"]);
    let (s, _) = run(&p, &[started(10), exited(10), scan(&["dog"])]);
    let (s, a) = next(&s, &p, &Event::Tick);
    assert_eq!(a, Action::ScanWatchdogs);
    let (_, a) = next(&s, &p, &scan(&[]));
    assert_eq!(a, Action::Shutdown(ShutdownReason::WatchdogsGone));
}

#[test]
fn ticks_and_exits_while_program_runs_do_nothing() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), Event::Tick, Event::ProcessExited { comm: "dog".into() }, scan(&[])]);
    assert_eq!(a, vec![Action::KeepRunning; 4]);
    assert_eq!(s.phase, Phase::Running);
}

#[test]
fn noexec_sandbox_stays_until_killed() {
    let p = policy(true, &[]);
    let (s, a) = run(&p, &[Event::Tick, Event::ProcessExited { comm: "sh".into() }]);
    assert_eq!(a, vec![Action::KeepRunning; 2]);
    assert_eq!(s.phase, Phase::Running);
}

#[test]
fn every_tracked_program_must_exit() {
    let p = policy(true, &[]);
    let (s, a) = run(&p, &[started(10), started(11), exited(10)]);
    assert_eq!(a[2], Action::KeepRunning);
    let (_, a) = next(&s, &p, &exited(11));
    assert_eq!(a, Action::Shutdown(ShutdownReason::ProgramExited));
}

#[test]
fn a_program_started_while_watchdog_alive_takes_over() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(&p, &[started(10), exited(10), scan(&["dog"]), started(12), scan(&[])]);
    assert_eq!(a[4], Action::KeepRunning, "stale scan must not kill a running program");
    assert_eq!(s.phase, Phase::Running);
    let (_, a) = next(&s, &p, &exited(12));
    assert_eq!(a, Action::ScanWatchdogs);
}

#[test]
fn a_relaunch_while_lingering_is_tracked_again() {
    let p = policy(false, &[]);
    let (s, _) = run(&p, &[started(10), exited(10), started(11)]);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.programs.iter().copied().collect::<Vec<_>>(), vec![11]);
}

#[test]
fn shutdown_request_always_wins() {
    for p in [policy(true, &[]), policy(false, &[]), policy(true, &["dog"]), policy(false, &["dog"])] {
        let (s, a) = run(&p, &[started(10), Event::ShutdownRequested { reason: "oz kill".into() }]);
        assert_eq!(a[1], Action::Shutdown(ShutdownReason::Requested("oz kill".into())), "{p:?}");
        assert!(s.is_stopping());
    }
}

#[test]
fn daemon_lost_keeps_running_and_reattach_sends_state() {
    let p = policy(true, &[]);
    let (s, a) = run(&p, &[started(10), Event::DaemonLost]);
    assert_eq!(a[1], Action::AwaitDaemon);
    assert!(!s.daemon_attached);
    assert_eq!(s.phase, Phase::Running);
    let (s, a) = next(&s, &p, &Event::DaemonAttached);
    assert_eq!(a, Action::SendState);
    assert!(s.daemon_attached);
    assert_eq!(s.programs.len(), 1);
}

#[test]
fn program_exit_while_daemon_lost_still_shuts_down() {
    let p = policy(true, &[]);
    let (s, a) = run(&p, &[started(10), Event::DaemonLost, exited(10)]);
    assert_eq!(a[2], Action::Shutdown(ShutdownReason::ProgramExited));
    assert!(!s.daemon_attached);
}

#[test]
fn events_after_shutdown_are_ignored_until_init_exits() {
    let p = policy(true, &["dog"]);
    let (s, a) = run(
        &p,
        &[
            started(10),
            exited(10),
            scan(&[]),
            Event::Tick,
            scan(&["dog"]),
            Event::ShutdownRequested { reason: "again".into() },
            started(13),
        ],
    );
    assert_eq!(a[3..], vec![Action::KeepRunning; 4]);
    assert_eq!(s.phase, Phase::ShuttingDown(ShutdownReason::ProgramExited));
    let (s, a) = next(&s, &p, &Event::InitExited);
    assert_eq!(a, Action::Finish);
    assert_eq!(s.phase, Phase::Ended);
}

#[test]
fn init_dying_unexpectedly_finishes() {
    for p in [policy(true, &[]), policy(false, &["dog"])] {
        let (s, a) = run(&p, &[started(10), Event::InitExited]);
        assert_eq!(a[1], Action::Finish);
        assert_eq!(s.phase, Phase::Ended);
        assert!(s.programs.is_empty());
    }
}

#[test]
fn stray_program_exit_for_unknown_pid_is_harmless() {
    let p = policy(true, &[]);
    let (s, a) = run(&p, &[started(10), exited(99)]);
    assert_eq!(a[1], Action::KeepRunning);
    assert_eq!(s.phase, Phase::Running);
}

#[test]
fn a_lost_display_shuts_down_whatever_the_policy() {
    for p in [policy(true, &[]), policy(false, &["dog"])] {
        let (s, a) = run(&p, &[started(10), Event::DisplayLost { detail: "Xephyr :101 ended".into() }]);
        let reason = ShutdownReason::DisplayLost("Xephyr :101 ended".into());
        assert_eq!(a[1], Action::Shutdown(reason.clone()), "{p:?}");
        assert_eq!(reason.to_string(), "X display lost: Xephyr :101 ended");
        assert!(s.is_stopping());
    }
}
