//! The runtime's side of the seccomp monitor: listeners from the init go to the monitor, its
//! records go to the sandbox log (outside the rate limit: they are bounded by the monitor's
//! caps and the one-a-second counts), and when the program exits the counts are flushed and a
//! training run is written to `train_output`.

use super::{Mode, Runtime};
use crate::agent::seccomp::trainfile;
use oz_wire::{AgentToDaemon, ExitStatus, LogLevel};
use std::os::fd::OwnedFd;
use std::path::Path;

impl Runtime {
    pub(in crate::agent::serve) fn seccomp_listener(&mut self, fds: Vec<OwnedFd>) {
        if let Some(sandbox) = self.started.sandbox() {
            sandbox.seccomp_listener(fds);
        }
    }

    /// New denial and hint records (the monitor's wake pipe was readable).
    pub(super) fn on_seccomp(&mut self) {
        let Some(m) = self.started.seccomp() else { return };
        let notes = m.take_notes();
        for message in m.take_messages() {
            self.seccomp_log(LogLevel::Warning, message);
        }
        for note in notes {
            self.seccomp_log(LogLevel::Info, note);
        }
    }

    /// The counts, when they changed (each supervision tick) or `force`d.
    pub(super) fn seccomp_counts(&mut self, force: bool) {
        self.on_seccomp();
        let Some(message) = self.started.seccomp().and_then(|m| m.counts_message(force)) else { return };
        self.seccomp_log(LogLevel::Info, message);
    }

    /// Kill and trap actions stay in the filter (no notification): their mark is a process
    /// that died of SIGSYS, logged here.
    pub(in crate::agent::serve) fn seccomp_exit(&mut self, pid: i32, comm: &str, status: ExitStatus) {
        if status == ExitStatus::Signal(libc::SIGSYS) {
            let message = format!(
                "seccomp: {comm}[{pid}] was killed by SIGSYS: a kill or trap rule of the policy, or the hardening \
                 filter (foreign architecture or x32 call)"
            );
            self.seccomp_log(LogLevel::Warning, message);
        }
    }

    /// The launch's program exited: final counts, and a training run's whitelist.
    pub(in crate::agent::serve) fn seccomp_program_exited(&mut self) {
        self.seccomp_counts(true);
        let Some(training) = self.started.seccomp().and_then(|m| m.take_training()) else { return };
        let calls: u64 = training.calls.values().map(|s| s.count).sum();
        let Some(out) = self.spec.profile.seccomp.train_output.clone() else {
            let message = format!("seccomp training recorded {calls} calls; set seccomp.train_output to keep them");
            return self.seccomp_log(LogLevel::Warning, message);
        };
        if !Path::new(&out).is_absolute() {
            return self.seccomp_log(LogLevel::Warning, format!("seccomp train_output {out}: not an absolute path"));
        }
        let (uid, gid) = (self.user.uid, self.user.gid);
        let message = match trainfile::write_as_user(Path::new(&out), &training, uid, gid) {
            Ok(()) => format!("seccomp training: {calls} calls of {} syscalls merged into {out}", training.calls.len()),
            Err(e) => format!("seccomp training: {out}: {e}"),
        };
        self.seccomp_log(LogLevel::Info, message);
    }

    fn seccomp_log(&mut self, level: LogLevel, message: String) {
        if self.mode == Mode::Standalone {
            // One write, so the line is never cut by the program's output on the same stderr.
            use std::io::Write;
            let line = format!("oz-agent[{}]: {message}\n", self.spec.sandbox_id);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            return;
        }
        let rec = self.record(level, message);
        self.send_daemon(AgentToDaemon::Log(rec), &[]);
    }
}
