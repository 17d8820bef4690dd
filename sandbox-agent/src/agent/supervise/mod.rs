//! The supervision decision as a pure state machine (Horust's `service_handler::next`).
//!
//! "The program exited: are watchdog processes alive? auto_shutdown yes or no?" is answered
//! here, without processes: the agent's event loop feeds [`Event`]s in, performs the returned
//! [`Action`] (scan `/proc`, shut the sandbox down, wait for a daemon, ...) and feeds the result
//! of that effect back as another event.
//!
//! Rules (the original Oz's auto-shutdown, minus its bugs):
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
mod tests;
