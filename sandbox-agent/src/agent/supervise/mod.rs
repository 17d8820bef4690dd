//! The supervision decision as a pure state machine (Horust's `service_handler::next`).
//!
//! "The program exited: are watchdog processes alive? auto_shutdown yes or no?" is answered
//! here, without processes: the agent's event loop feeds [`Event`]s in, performs the returned
//! [`Action`] (scan `/proc`, shut the sandbox down, wait for a daemon, ...) and feeds the result
//! of that effect back as another event.
//!
//! Rules (oz-inventory.md §7.1, minus the original's bugs):
//! - while any tracked program (the launch's program, or one started by `RunProgram`) runs,
//!   the sandbox stays up; shells are not tracked;
//! - when the last tracked program has exited and the profile names watchdogs, the sandbox stays
//!   up while any process in it has an argv\[0\] basename (or comm) equal to a watchdog name; the
//!   scan runs on every exit in the sandbox and on every periodic tick; a scan that finds other
//!   processes but no watchdog is confirmed by a second scan shortly after (a child forked by
//!   the program may not have exec'd its watchdog image yet);
//! - when nothing keeps it alive, `auto_shutdown: yes` shuts it down and `auto_shutdown: no`
//!   keeps it until it is killed;
//! - a shutdown request always shuts down; losing the daemon never does.
//!
//! This machine is one branch of the sandbox's supervision tree ([`tree`]): the tree adds the
//! init at the root and the agent's helper processes (restarted with backoff and a budget), and
//! is what the event loop feeds.

pub mod tree;

use std::collections::BTreeSet;

/// What the profile says about the sandbox's lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `auto_shutdown: yes`.
    pub auto_shutdown: bool,
    /// Process names that keep the sandbox alive after the programs exited.
    pub watchdogs: Vec<String>,
}

impl Policy {
    pub fn from_profile(profile: &oz_profiles::Profile) -> Policy {
        Policy {
            auto_shutdown: profile.auto_shutdown == oz_profiles::profile::AutoShutdown::Yes,
            watchdogs: profile.watchdog.clone(),
        }
    }

    /// Does a process named `name` (argv\[0\] basename or comm) keep the sandbox alive?
    pub fn is_watchdog(&self, name: &str) -> bool {
        let base = name.rsplit('/').next().unwrap_or(name);
        self.watchdogs.iter().any(|w| w == base)
    }

    /// Whether the lifetime depends on watchdog scans at all.
    fn scans(&self) -> bool {
        self.auto_shutdown && !self.watchdogs.is_empty()
    }
}

/// Where the sandbox is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// At least one tracked program runs (or none was started yet: `noexec`).
    Running,
    /// Every tracked program exited; watchdogs (last seen alive) keep the sandbox up.
    Watchdog,
    /// A scan found processes but no watchdog: confirm with a second scan a moment later (a
    /// watchdog may have been forked and not exec'd yet). `after_watchdog`: one was seen before.
    Confirming { after_watchdog: bool },
    /// Every tracked program exited and `auto_shutdown: no`: up until killed.
    Lingering,
    /// Shutdown decided; waiting for the init to end.
    ShuttingDown(ShutdownReason),
    /// The init is gone: nothing left to supervise.
    Ended,
}

/// Why a sandbox shuts down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownReason {
    /// The program exited and nothing keeps the sandbox alive.
    ProgramExited,
    /// The last watchdog process exited.
    WatchdogsGone,
    /// The daemon (or a user through it) asked.
    Requested(String),
    /// The init died on its own.
    InitExited,
    /// A helper the sandbox cannot live without exhausted its restart budget.
    HelperGaveUp(String),
    /// The X server the program draws on ended (a host-side Xephyr).
    DisplayLost(String),
}

impl std::fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShutdownReason::ProgramExited => write!(f, "program exited"),
            ShutdownReason::WatchdogsGone => write!(f, "watchdog processes exited"),
            ShutdownReason::Requested(why) => write!(f, "requested: {why}"),
            ShutdownReason::InitExited => write!(f, "sandbox init exited"),
            ShutdownReason::HelperGaveUp(name) => write!(f, "helper {name} gave up"),
            ShutdownReason::DisplayLost(what) => write!(f, "X display lost: {what}"),
        }
    }
}

/// The supervisor's whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub phase: Phase,
    /// Pids of the tracked programs still running.
    pub programs: BTreeSet<i32>,
    /// Whether a daemon is connected (events are buffered/dropped otherwise, never fatal).
    pub daemon_attached: bool,
}

impl State {
    /// A fresh sandbox whose init is up, attached to the daemon that launched it.
    pub fn new() -> State {
        State { phase: Phase::Running, programs: BTreeSet::new(), daemon_attached: true }
    }

    /// True once shutdown has been decided (or the sandbox ended).
    pub fn is_stopping(&self) -> bool {
        matches!(self.phase, Phase::ShuttingDown(_) | Phase::Ended)
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// Something that happened to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A tracked program was exec'd.
    ProgramStarted { pid: i32 },
    /// A tracked program exited.
    ProgramExited { pid: i32 },
    /// Some other process in the sandbox exited.
    ProcessExited { comm: String },
    /// Periodic timer.
    Tick,
    /// Result of a scan: the names (argv\[0\] basenames and comms) of every live process.
    WatchdogScan { alive: Vec<String> },
    /// The daemon asked for a shutdown (kill, daemon stop with stop_sandboxes_on_exit, ...).
    ShutdownRequested { reason: String },
    /// The daemon channel hit EOF.
    DaemonLost,
    /// A daemon connected through the rendezvous socket and said hello.
    DaemonAttached,
    /// The init process exited.
    InitExited,
    /// The X server the program was connected to ended: its programs cannot draw any more.
    DisplayLost { detail: String },
}

/// What the event loop must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do; the sandbox stays up.
    KeepRunning,
    /// Scan the sandbox's processes and feed back [`Event::WatchdogScan`].
    ScanWatchdogs,
    /// Feed [`Event::Tick`] again soon (a short delay, not the periodic tick): the negative
    /// scan needs its confirmation.
    RescanSoon,
    /// Tear the sandbox down (ask init to stop, kill what is left, clean up).
    Shutdown(ShutdownReason),
    /// Keep the sandbox; wait for a daemon on the rendezvous socket.
    AwaitDaemon,
    /// A new daemon is attached: send it the state record.
    SendState,
    /// The sandbox is gone: release what is left and exit.
    Finish,
}

/// The transition function: pure, total, and the only place supervision is decided.
pub fn next(state: &State, policy: &Policy, event: &Event) -> (State, Action) {
    let mut s = state.clone();
    let action = match event {
        Event::DaemonLost => {
            s.daemon_attached = false;
            Action::AwaitDaemon
        }
        Event::DaemonAttached => {
            s.daemon_attached = true;
            Action::SendState
        }
        Event::InitExited => {
            s.phase = Phase::Ended;
            s.programs.clear();
            Action::Finish
        }
        _ if s.is_stopping() => Action::KeepRunning,
        Event::ShutdownRequested { reason } => shutdown(&mut s, ShutdownReason::Requested(reason.clone())),
        Event::DisplayLost { detail } => shutdown(&mut s, ShutdownReason::DisplayLost(detail.clone())),
        Event::ProgramStarted { pid } => {
            s.programs.insert(*pid);
            s.phase = Phase::Running;
            Action::KeepRunning
        }
        Event::ProgramExited { pid } if s.programs.remove(pid) => after_exit(&mut s, policy, true),
        // Not a tracked program (already reported, or never started): an ordinary exit.
        Event::ProgramExited { .. } => after_exit(&mut s, policy, false),
        Event::ProcessExited { .. } | Event::Tick => after_exit(&mut s, policy, false),
        Event::WatchdogScan { alive } => scanned(&mut s, policy, alive),
    };
    (s, action)
}

/// Something exited (or the timer fired): decide whether the sandbox still has a reason to live.
fn after_exit(s: &mut State, policy: &Policy, program_exit: bool) -> Action {
    if !s.programs.is_empty() {
        return Action::KeepRunning;
    }
    match s.phase {
        // A non-program exit or a tick while no program was ever started (noexec) or while
        // lingering changes nothing.
        Phase::Running if !program_exit => Action::KeepRunning,
        Phase::Lingering => Action::KeepRunning,
        Phase::Running | Phase::Watchdog | Phase::Confirming { .. } => {
            if !policy.auto_shutdown {
                s.phase = Phase::Lingering;
                Action::KeepRunning
            } else if policy.scans() {
                Action::ScanWatchdogs
            } else {
                shutdown(s, ShutdownReason::ProgramExited)
            }
        }
        Phase::ShuttingDown(_) | Phase::Ended => Action::KeepRunning,
    }
}

fn scanned(s: &mut State, policy: &Policy, alive: &[String]) -> Action {
    // A scan result is only meaningful while no tracked program runs (a program may have
    // started between the request and the result) and the sandbox is watchdog-governed.
    let after_watchdog = match s.phase {
        Phase::Running => false,
        Phase::Watchdog => true,
        Phase::Confirming { after_watchdog } => after_watchdog,
        _ => return Action::KeepRunning,
    };
    if !s.programs.is_empty() || !policy.scans() {
        return Action::KeepRunning;
    }
    if alive.iter().any(|name| policy.is_watchdog(name)) {
        s.phase = Phase::Watchdog;
        return Action::KeepRunning;
    }
    if !alive.is_empty() && !matches!(s.phase, Phase::Confirming { .. }) {
        s.phase = Phase::Confirming { after_watchdog };
        return Action::RescanSoon;
    }
    let reason = if after_watchdog { ShutdownReason::WatchdogsGone } else { ShutdownReason::ProgramExited };
    shutdown(s, reason)
}

fn shutdown(s: &mut State, reason: ShutdownReason) -> Action {
    s.phase = Phase::ShuttingDown(reason.clone());
    Action::Shutdown(reason)
}

#[cfg(test)]
mod tests {
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
    fn a_lost_display_shuts_down_whatever_the_policy() {
        for p in [policy(true, &[]), policy(false, &["dog"])] {
            let (s, a) = run(&p, &[started(10), Event::DisplayLost { detail: "Xephyr :101 ended".into() }]);
            let reason = ShutdownReason::DisplayLost("Xephyr :101 ended".into());
            assert_eq!(a[1], Action::Shutdown(reason.clone()), "{p:?}");
            assert_eq!(reason.to_string(), "X display lost: Xephyr :101 ended");
            assert!(s.is_stopping());
        }
    }

    #[test]
    fn stray_program_exit_for_unknown_pid_is_harmless() {
        let p = policy(true, &[]);
        let (s, a) = run(&p, &[started(10), exited(99)]);
        assert_eq!(a[1], Action::KeepRunning);
        assert_eq!(s.phase, Phase::Running);
    }
}
