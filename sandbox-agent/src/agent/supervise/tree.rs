//! The supervision tree of one sandbox, as a pure state machine.
//!
//! The root is the init: permanent, its death ends the sandbox ([`SandboxEvent::InitExited`]).
//! Under it the program and its watchdogs, decided by the program machine of the parent module
//! (auto_shutdown, watchdog scans), and any number of helper slots: processes the agent starts
//! for the sandbox (an X server, an X client, a network forwarder). A helper that exits is
//! restarted after an exponential backoff; when it has been restarted `max_restarts` times
//! within `window` it is given up, which is reported and then handled as its
//! [`RestartPolicy::on_give_up`] says (ignore it, or shut the sandbox down).
//!
//! Time is an input (`now`, the time since the agent started), so every decision is testable
//! without processes or clocks. The event loop performs the returned [`Action`]s in order and
//! feeds their results back ([`Event::Started`], [`Event::SpawnFailed`], ...).
//!
//! Shutdown ordering: when the sandbox shuts down (or the init dies), the running helpers are
//! stopped first, youngest slot first, then the init is asked to stop; helpers that exit while
//! the sandbox stops are not restarted.

use super::{next as sandbox_next, Action as SandboxAction, Event as SandboxEvent, Phase, Policy, ShutdownReason, State};
use std::collections::VecDeque;
use std::time::Duration;

/// A helper slot: its index in [`Tree::children`].
pub type Slot = usize;

/// What to do with a helper that exhausted its restart budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnGiveUp {
    /// Leave it stopped; the sandbox goes on without it.
    Ignore,
    /// The sandbox cannot work without it: shut the sandbox down.
    ShutdownSandbox,
}

/// How a helper slot is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubled for each restart within `window`.
    pub initial_backoff: Duration,
    /// Longest delay between restarts.
    pub max_backoff: Duration,
    /// Restarts allowed within `window`; one more exit gives the slot up.
    pub max_restarts: u32,
    pub window: Duration,
    pub on_give_up: OnGiveUp,
}

impl RestartPolicy {
    /// Helpers the sandbox can live without (a forwarder, an X client): 3 restarts a minute.
    pub const HELPER: RestartPolicy = RestartPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
        max_restarts: 3,
        window: Duration::from_secs(60),
        on_give_up: OnGiveUp::Ignore,
    };

    /// A child whose exit ends the sandbox at once (never restarted).
    pub const PERMANENT: RestartPolicy = RestartPolicy {
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_restarts: 0,
        window: Duration::ZERO,
        on_give_up: OnGiveUp::ShutdownSandbox,
    };

    /// The delay before restart number `n` (0-based) within the window.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Where a helper slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// `Spawn` was asked; waiting for `Started` or `SpawnFailed`.
    Starting,
    Running { pid: i32 },
    /// Exited; restarts when `now` reaches `until`.
    Backoff { until: Duration },
    /// Restart budget exhausted.
    GivenUp,
    /// Stopped with the sandbox (or added while it stopped).
    Stopped,
}

impl ChildState {
    /// A short name for health reports.
    pub fn name(&self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running { .. } => "running",
            ChildState::Backoff { .. } => "backoff",
            ChildState::GivenUp => "given up",
            ChildState::Stopped => "stopped",
        }
    }
}

/// One helper slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: String,
    pub restart: RestartPolicy,
    pub state: ChildState,
    /// Restarts since the slot was added.
    pub restarts: u32,
    /// When the restarts within the current window happened.
    recent: VecDeque<Duration>,
}

/// The whole tree: the program machine's state and the helper slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub sandbox: State,
    pub policy: Policy,
    pub children: Vec<Child>,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An event of the program, the watchdogs, the init or the daemon (the program machine).
    Sandbox(SandboxEvent),
    /// Supervise a new helper slot (it gets the next [`Slot`] number).
    Add { name: String, restart: RestartPolicy },
    /// The helper of `slot` runs as `pid`.
    Started { slot: Slot, pid: i32 },
    /// The helper of `slot` could not be started.
    SpawnFailed { slot: Slot, error: String },
    /// The helper of `slot` exited (`status` as a shell reports it).
    ChildExited { slot: Slot, status: String },
    /// Time passed (a `SpawnAfter` delay ran out).
    Tick,
}

impl From<SandboxEvent> for Event {
    fn from(e: SandboxEvent) -> Event {
        Event::Sandbox(e)
    }
}

/// What the event loop must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// What the program machine decided (scan, shutdown, finish, ...).
    Sandbox(SandboxAction),
    /// Start the helper of `slot` now; feed back `Started` or `SpawnFailed`.
    Spawn { slot: Slot },
    /// Feed `Tick` again after `delay` (the slot restarts then).
    SpawnAfter { slot: Slot, delay: Duration },
    /// Terminate the helper of `slot` (it runs as `pid`); its exit is fed back as usual.
    Stop { slot: Slot, pid: i32 },
    /// Something the daemon's log should say.
    Report(Report),
}

/// A supervision record for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The helper exited and is restarted after `delay`.
    Restarting { name: String, status: String, delay: Duration, restart: u32 },
    /// The helper exited too often and is not restarted any more.
    GaveUp { name: String, status: String, restarts: u32, window: Duration, shutdown: bool },
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Restarting { name, status, delay, restart } => {
                write!(f, "helper {name}: {status}; restart {restart} in {} ms", delay.as_millis())
            }
            Report::GaveUp { name, status, restarts, window, shutdown } => {
                let then = if *shutdown { "shutting the sandbox down" } else { "going on without it" };
                write!(f, "helper {name}: {status}; given up after {restarts} restarts within {} s, {then}", window.as_secs())
            }
        }
    }
}

impl Tree {
    pub fn new(policy: Policy) -> Tree {
        Tree { sandbox: State::new(), policy, children: Vec::new() }
    }

    pub fn is_stopping(&self) -> bool {
        self.sandbox.is_stopping()
    }
}

/// The transition function of the tree: pure, and with the program machine's `next` the only
/// place supervision is decided.
pub fn next(tree: &Tree, event: &Event, now: Duration) -> (Tree, Vec<Action>) {
    let mut t = tree.clone();
    let mut out = Vec::new();
    match event {
        Event::Sandbox(ev) => {
            let (state, action) = sandbox_next(&t.sandbox, &t.policy, ev);
            t.sandbox = state;
            if matches!(action, SandboxAction::Shutdown(_) | SandboxAction::Finish) {
                stop_children(&mut t, &mut out);
            }
            out.push(Action::Sandbox(action));
        }
        Event::Add { name, restart } => {
            let state = if t.is_stopping() { ChildState::Stopped } else { ChildState::Starting };
            t.children.push(Child { name: name.clone(), restart: *restart, state, restarts: 0, recent: VecDeque::new() });
            if state == ChildState::Starting {
                out.push(Action::Spawn { slot: t.children.len() - 1 });
            }
        }
        Event::Started { slot, pid } => {
            let stopping = t.is_stopping();
            if let Some(c) = t.children.get_mut(*slot) {
                if stopping {
                    // Started while the sandbox stops: stop it again at once.
                    c.state = ChildState::Stopped;
                    out.push(Action::Stop { slot: *slot, pid: *pid });
                } else if c.state == ChildState::Starting {
                    c.state = ChildState::Running { pid: *pid };
                }
            }
        }
        Event::SpawnFailed { slot, error } => {
            if t.children.get(*slot).is_some_and(|c| c.state == ChildState::Starting) {
                exited(&mut t, *slot, format!("start failed: {error}"), now, &mut out);
            }
        }
        Event::ChildExited { slot, status } => {
            if t.children.get(*slot).is_some_and(|c| matches!(c.state, ChildState::Running { .. })) {
                exited(&mut t, *slot, status.clone(), now, &mut out);
            }
        }
        Event::Tick => {
            if !t.is_stopping() {
                for (slot, c) in t.children.iter_mut().enumerate() {
                    if matches!(c.state, ChildState::Backoff { until } if until <= now) {
                        c.state = ChildState::Starting;
                        out.push(Action::Spawn { slot });
                    }
                }
            }
        }
    }
    (t, out)
}

/// The helper of `slot` ended (or never started): restart it, or give it up.
fn exited(t: &mut Tree, slot: Slot, status: String, now: Duration, out: &mut Vec<Action>) {
    if t.is_stopping() {
        t.children[slot].state = ChildState::Stopped;
        return;
    }
    let c = &mut t.children[slot];
    while c.recent.front().is_some_and(|at| now.saturating_sub(*at) >= c.restart.window) {
        c.recent.pop_front();
    }
    let n = c.recent.len() as u32;
    if n < c.restart.max_restarts {
        let delay = c.restart.backoff(n);
        c.recent.push_back(now);
        c.restarts += 1;
        c.state = ChildState::Backoff { until: now + delay };
        out.push(Action::Report(Report::Restarting { name: c.name.clone(), status, delay, restart: c.restarts }));
        out.push(Action::SpawnAfter { slot, delay });
        return;
    }
    c.state = ChildState::GivenUp;
    let shutdown = c.restart.on_give_up == OnGiveUp::ShutdownSandbox;
    let name = c.name.clone();
    out.push(Action::Report(Report::GaveUp { name: name.clone(), status, restarts: n, window: c.restart.window, shutdown }));
    if shutdown {
        let reason = ShutdownReason::HelperGaveUp(name);
        t.sandbox.phase = Phase::ShuttingDown(reason.clone());
        stop_children(t, out);
        out.push(Action::Sandbox(SandboxAction::Shutdown(reason)));
    }
}

/// Stop every running helper, youngest first; the ones not started yet never will be.
fn stop_children(t: &mut Tree, out: &mut Vec<Action>) {
    for (slot, c) in t.children.iter_mut().enumerate().rev() {
        match c.state {
            ChildState::Running { pid } => out.push(Action::Stop { slot, pid }),
            ChildState::Backoff { .. } => c.state = ChildState::Stopped,
            // A `Starting` slot is stopped when its `Started` arrives.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
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
        let x = add(&mut t, "xserver", RestartPolicy { max_restarts: 0, on_give_up: OnGiveUp::ShutdownSandbox, ..RestartPolicy::HELPER });
        feed(&mut t, Event::Started { slot: a, pid: 40 }, 0);
        feed(&mut t, Event::Started { slot: x, pid: 50 }, 0);
        let acts = feed(&mut t, exit(x), 5);
        let reason = ShutdownReason::HelperGaveUp("xserver".into());
        assert!(matches!(&acts[0], Action::Report(Report::GaveUp { shutdown: true, .. })));
        assert_eq!(acts[1..], [Action::Stop { slot: a, pid: 40 }, Action::Sandbox(SandboxAction::Shutdown(reason.clone()))]);
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
        assert_eq!(acts, vec![Action::Stop { slot: b, pid: 2 }, Action::Stop { slot: a, pid: 1 }, Action::Sandbox(SandboxAction::Finish)]);
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
        assert_eq!(a, vec![Action::Stop { slot: x, pid: 20 }, Action::Sandbox(SandboxAction::Shutdown(ShutdownReason::WatchdogsGone))]);
    }

    #[test]
    fn stale_and_unknown_slots_are_harmless() {
        let mut t = tree(true, &[]);
        assert!(feed(&mut t, exit(7), 0).is_empty());
        assert!(feed(&mut t, Event::Started { slot: 7, pid: 1 }, 0).is_empty());
        let x = add(&mut t, "x", RestartPolicy::HELPER);
        assert!(feed(&mut t, exit(x), 0).is_empty(), "an exit before Started is not the child's");
    }
}
