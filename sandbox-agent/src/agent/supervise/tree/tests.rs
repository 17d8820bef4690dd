use super::*;
use crate::agent::supervise::Policy;

const MS: Duration = Duration::from_millis(1);

fn tree(auto: bool, watchdogs: &[&str]) -> Tree {
    Tree::new(Policy { auto_shutdown: auto, watchdogs: watchdogs.iter().map(|s| s.to_string()).collect() })
}

/// Feed `event` at `now` (ms), returning the actions.
fn feed(t: &mut Tree, event: Event, now_ms: u64) -> Vec<Action> {
    let (n, a) = next(t, &event, MS * now_ms as u32);
    *t = n;
    a
}

fn add(t: &mut Tree, name: &str, restart: RestartPolicy) -> Slot {
    let a = feed(t, Event::Add { name: name.into(), restart }, 0);
    let slot = t.children.len() - 1;
    assert_eq!(a, vec![Action::Spawn { slot }]);
    slot
}

fn exit(slot: Slot) -> Event {
    Event::ChildExited { slot, status: "killed by SIGKILL".into() }
}

fn spawn_after(a: &[Action]) -> Option<Duration> {
    a.iter().find_map(|a| match a {
        Action::SpawnAfter { delay, .. } => Some(*delay),
        _ => None,
    })
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = RestartPolicy { initial_backoff: MS * 100, max_backoff: MS * 1000, ..RestartPolicy::HELPER };
    let got: Vec<_> = (0..6).map(|n| p.backoff(n).as_millis()).collect();
    assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(p.backoff(200), MS * 1000, "no overflow");
}

#[test]
fn a_helper_that_exits_is_restarted_after_its_backoff() {
    let mut t = tree(true, &[]);
    let x = add(&mut t, "xserver", RestartPolicy::HELPER);
    assert!(feed(&mut t, Event::Started { slot: x, pid: 50 }, 0).is_empty());
    assert_eq!(t.children[x].state, ChildState::Running { pid: 50 });
    let a = feed(&mut t, exit(x), 1000);
    assert!(matches!(&a[0], Action::Report(Report::Restarting { restart: 1, .. })), "{a:?}");
    assert_eq!(a[1], Action::SpawnAfter { slot: x, delay: MS * 100 });
    assert_eq!(t.children[x].state, ChildState::Backoff { until: MS * 1100 });
    assert!(feed(&mut t, Event::Tick, 1050).is_empty(), "not before the backoff");
    assert_eq!(feed(&mut t, Event::Tick, 1100), vec![Action::Spawn { slot: x }]);
    feed(&mut t, Event::Started { slot: x, pid: 51 }, 1101);
    assert_eq!(t.children[x].state, ChildState::Running { pid: 51 });
    assert_eq!(t.children[x].restarts, 1);
    assert_eq!(t.sandbox.phase, Phase::Running, "the sandbox is not affected");
}

#[test]
fn backoff_grows_within_the_window_and_resets_after_it() {
    let mut t = tree(true, &[]);
    let p = RestartPolicy { max_restarts: 10, ..RestartPolicy::HELPER };
    let x = add(&mut t, "fwd", p);
    let mut delays = Vec::new();
    let mut now = 0;
    for pid in 0..4 {
        feed(&mut t, Event::Started { slot: x, pid }, now);
        now += 10;
        delays.push(spawn_after(&feed(&mut t, exit(x), now)).unwrap().as_millis());
        now += 5000;
        feed(&mut t, Event::Tick, now);
    }
    assert_eq!(delays, vec![100, 200, 400, 800]);
    // A quiet minute: the next exit starts from the initial delay again.
    feed(&mut t, Event::Started { slot: x, pid: 9 }, now);
    now += 61_000;
    assert_eq!(spawn_after(&feed(&mut t, exit(x), now)), Some(MS * 100));
}

#[test]
fn exhausting_the_budget_gives_up_and_reports() {
    let mut t = tree(true, &[]);
    let x = add(&mut t, "xclient", RestartPolicy::HELPER);
    let mut now = 0;
    for pid in 0..3 {
        feed(&mut t, Event::Started { slot: x, pid }, now);
        now += 10;
        assert!(spawn_after(&feed(&mut t, exit(x), now)).is_some());
        now += 1000;
        assert_eq!(feed(&mut t, Event::Tick, now), vec![Action::Spawn { slot: x }]);
    }
    feed(&mut t, Event::Started { slot: x, pid: 3 }, now);
    let a = feed(&mut t, exit(x), now + 10);
    let Action::Report(r @ Report::GaveUp { restarts: 3, shutdown: false, .. }) = &a[0] else { panic!("{a:?}") };
    assert!(r.to_string().contains("helper xclient: killed by SIGKILL; given up after 3 restarts within 60 s"), "{r}");
    assert_eq!(a.len(), 1, "no restart, no shutdown: {a:?}");
    assert_eq!(t.children[x].state, ChildState::GivenUp);
    assert!(feed(&mut t, Event::Tick, now + 100_000).is_empty());
    assert_eq!(t.sandbox.phase, Phase::Running);
}

#[test]
fn a_failed_start_counts_against_the_budget() {
    let mut t = tree(true, &[]);
    let x = add(&mut t, "fwd", RestartPolicy { max_restarts: 1, ..RestartPolicy::HELPER });
    let a = feed(&mut t, Event::SpawnFailed { slot: x, error: "ENOENT".into() }, 0);
    assert_eq!(spawn_after(&a), Some(MS * 100));
    feed(&mut t, Event::Tick, 100);
    let a = feed(&mut t, Event::SpawnFailed { slot: x, error: "ENOENT".into() }, 100);
    assert!(matches!(&a[..], [Action::Report(Report::GaveUp { .. })]), "{a:?}");
}

#[test]
fn giving_up_a_vital_helper_shuts_the_sandbox_down() {
    let mut t = tree(true, &[]);
    feed(&mut t, SandboxEvent::ProgramStarted { pid: 10 }.into(), 0);
    let a = add(&mut t, "aux", RestartPolicy::HELPER);
    let x = add(
        &mut t,
        "xserver",
        RestartPolicy { max_restarts: 0, on_give_up: OnGiveUp::ShutdownSandbox, ..RestartPolicy::HELPER },
    );
    feed(&mut t, Event::Started { slot: a, pid: 40 }, 0);
    feed(&mut t, Event::Started { slot: x, pid: 50 }, 0);
    let acts = feed(&mut t, exit(x), 5);
    let reason = ShutdownReason::HelperGaveUp("xserver".into());
    assert!(matches!(&acts[0], Action::Report(Report::GaveUp { shutdown: true, .. })));
    assert_eq!(
        acts[1..],
        [Action::Stop { slot: a, pid: 40 }, Action::Sandbox(SandboxAction::Shutdown(reason.clone()))]
    );
    assert_eq!(t.sandbox.phase, Phase::ShuttingDown(reason));
    assert_eq!(reason_text(&t), "helper xserver gave up");
}

fn reason_text(t: &Tree) -> String {
    match &t.sandbox.phase {
        Phase::ShuttingDown(r) => r.to_string(),
        p => format!("{p:?}"),
    }
}

#[test]
fn permanent_children_end_the_sandbox_on_first_exit() {
    let mut t = tree(false, &[]);
    let x = add(&mut t, "vital", RestartPolicy::PERMANENT);
    feed(&mut t, Event::Started { slot: x, pid: 5 }, 0);
    let a = feed(&mut t, exit(x), 1);
    assert_eq!(a.last(), Some(&Action::Sandbox(SandboxAction::Shutdown(ShutdownReason::HelperGaveUp("vital".into())))));
}

#[test]
fn the_init_dying_stops_helpers_then_finishes() {
    let mut t = tree(true, &["dog"]);
    let a = add(&mut t, "a", RestartPolicy::HELPER);
    let b = add(&mut t, "b", RestartPolicy::HELPER);
    feed(&mut t, Event::Started { slot: a, pid: 1 }, 0);
    feed(&mut t, Event::Started { slot: b, pid: 2 }, 0);
    let acts = feed(&mut t, SandboxEvent::InitExited.into(), 1);
    assert_eq!(
        acts,
        vec![
            Action::Stop { slot: b, pid: 2 },
            Action::Stop { slot: a, pid: 1 },
            Action::Sandbox(SandboxAction::Finish)
        ]
    );
    assert_eq!(t.sandbox.phase, Phase::Ended);
    // Their exits are not restarts.
    assert!(feed(&mut t, exit(b), 2).is_empty());
    assert_eq!(t.children[b].state, ChildState::Stopped);
}

#[test]
fn shutdown_stops_helpers_before_the_init_and_never_restarts_them() {
    let mut t = tree(true, &[]);
    feed(&mut t, SandboxEvent::ProgramStarted { pid: 10 }.into(), 0);
    let x = add(&mut t, "x", RestartPolicy::HELPER);
    let y = add(&mut t, "y", RestartPolicy::HELPER);
    feed(&mut t, Event::Started { slot: x, pid: 20 }, 0);
    feed(&mut t, exit(x), 1); // x in backoff, y still starting
    let acts = feed(&mut t, SandboxEvent::ProgramExited { pid: 10 }.into(), 2);
    assert_eq!(acts, vec![Action::Sandbox(SandboxAction::Shutdown(ShutdownReason::ProgramExited))]);
    assert_eq!(t.children[x].state, ChildState::Stopped, "a pending restart is cancelled");
    assert!(feed(&mut t, Event::Tick, 10_000).is_empty());
    // y started meanwhile: stopped at once.
    assert_eq!(feed(&mut t, Event::Started { slot: y, pid: 30 }, 3), vec![Action::Stop { slot: y, pid: 30 }]);
    assert!(feed(&mut t, Event::Add { name: "late".into(), restart: RestartPolicy::HELPER }, 4).is_empty());
}

#[test]
fn helpers_do_not_change_the_program_policy() {
    // auto_shutdown with watchdogs: the program machine's decisions pass through unchanged.
    let mut t = tree(true, &["dog"]);
    let x = add(&mut t, "x", RestartPolicy::HELPER);
    feed(&mut t, Event::Started { slot: x, pid: 20 }, 0);
    feed(&mut t, SandboxEvent::ProgramStarted { pid: 10 }.into(), 0);
    let a = feed(&mut t, SandboxEvent::ProgramExited { pid: 10 }.into(), 1);
    assert_eq!(a, vec![Action::Sandbox(SandboxAction::ScanWatchdogs)]);
    let a = feed(&mut t, SandboxEvent::WatchdogScan { alive: vec!["dog".into()] }.into(), 1);
    assert_eq!(a, vec![Action::Sandbox(SandboxAction::KeepRunning)]);
    let a = feed(&mut t, SandboxEvent::WatchdogScan { alive: vec![] }.into(), 2);
    assert_eq!(
        a,
        vec![
            Action::Stop { slot: x, pid: 20 },
            Action::Sandbox(SandboxAction::Shutdown(ShutdownReason::WatchdogsGone))
        ]
    );
}

#[test]
fn stale_and_unknown_slots_are_harmless() {
    let mut t = tree(true, &[]);
    assert!(feed(&mut t, exit(7), 0).is_empty());
    assert!(feed(&mut t, Event::Started { slot: 7, pid: 1 }, 0).is_empty());
    let x = add(&mut t, "x", RestartPolicy::HELPER);
    assert!(feed(&mut t, exit(x), 0).is_empty(), "an exit before Started is not the child's");
}
