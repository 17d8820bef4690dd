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

use super::{
    next as sandbox_next, Action as SandboxAction, Event as SandboxEvent, Phase, Policy, ShutdownReason, State,
};
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
    Running {
        pid: i32,
    },
    /// Exited; restarts when `now` reaches `until`.
    Backoff {
        until: Duration,
    },
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
                write!(
                    f,
                    "helper {name}: {status}; given up after {restarts} restarts within {} s, {then}",
                    window.as_secs()
                )
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
            t.children.push(Child {
                name: name.clone(),
                restart: *restart,
                state,
                restarts: 0,
                recent: VecDeque::new(),
            });
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
    out.push(Action::Report(Report::GaveUp {
        name: name.clone(),
        status,
        restarts: n,
        window: c.restart.window,
        shutdown,
    }));
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
mod tests;
