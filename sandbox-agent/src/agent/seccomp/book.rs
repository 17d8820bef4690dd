//! What the seccomp monitor records, without any IO: for each notified call the answer (let it
//! run, or fail it with the policy's errno) and, for denials, a [`Denial`] per distinct call
//! with the rule that decided; in training, every call ([`Training`]).
//!
//! Memory is bounded: at most [`MAX_DENIALS`] distinct denials are kept (later ones only
//! count), and the queue of log messages holds at most one per kept denial or hint.

use oz_profiles::profile::SeccompMode;
use oz_profiles::seccomp::eval::decide;
use oz_profiles::seccomp::ir::{Action, Policy};
use oz_profiles::seccomp::report::{self, Counts, Denial, Hint};
use oz_profiles::seccomp::train::Training;
use oz_profiles::seccomp::{consts, decode};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Distinct denials kept per sandbox.
pub const MAX_DENIALS: usize = 256;
/// Distinct missing-path hints kept per sandbox.
pub const MAX_HINTS: usize = 64;
/// Least time between two counts messages (but for the forced one at the program's exit): the
/// log ring keeps 1000 records per user, counts must not push the denials themselves out.
pub const COUNTS_EVERY: Duration = Duration::from_secs(10);
/// Raw calls (pid, number, arguments) remembered for the repeat fast path; cleared when full.
pub const MAX_REPEATS: usize = 1024;

/// One notified call, as the monitor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub syscall: String,
    pub args: [u64; 6],
    pub pid: i32,
    pub comm: String,
    pub path: Option<String>,
}

/// How to answer a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SECCOMP_USER_NOTIF_FLAG_CONTINUE: the call runs.
    Continue,
    /// The call fails with this errno.
    Errno(i32),
}

/// The key of a distinct denial.
type Key = (String, String, Option<String>, String, Option<u32>);

pub struct Book {
    policy: Policy,
    whitelist: bool,
    enforce: bool,
    train: bool,
    denials: Vec<Denial>,
    index: HashMap<Key, usize>,
    counts: Vec<u64>,
    total: u64,
    dropped: u64,
    hints: Vec<String>,
    /// Opens are notified too: look for paths missing in the sandbox.
    hinting: bool,
    /// Log messages not yet taken.
    messages: VecDeque<String>,
    /// Informational messages about the policy, not yet taken.
    notes: Vec<String>,
    /// Counts changed since they were last taken.
    dirty: bool,
    /// When counts were last taken.
    counted_at: Option<Instant>,
    training: Training,
    /// Raw denied calls already recorded, to their denial and answer: a call repeated in a loop
    /// is counted without decoding it again.
    repeats: HashMap<(i32, u64, [u64; 6]), (usize, Answer)>,
}

impl Book {
    pub fn new(policy: Policy, mode: SeccompMode, enforce: bool) -> Book {
        Book::with_hints(policy, mode, enforce, false)
    }

    /// As [`Book::new`]; with `hinting`, opens are notified and checked for missing paths.
    pub fn with_hints(policy: Policy, mode: SeccompMode, enforce: bool, hinting: bool) -> Book {
        Book {
            policy,
            whitelist: mode == SeccompMode::Whitelist,
            enforce: enforce && mode != SeccompMode::Train,
            train: mode == SeccompMode::Train,
            denials: Vec::new(),
            index: HashMap::new(),
            counts: Vec::new(),
            total: 0,
            dropped: 0,
            hints: Vec::new(),
            hinting,
            messages: VecDeque::new(),
            notes: Vec::new(),
            dirty: false,
            counted_at: None,
            training: Training { runs: 1, ..Training::default() },
            repeats: HashMap::new(),
        }
    }

    /// The answer to a call made again exactly as an earlier denied one (same process, number
    /// and raw arguments), counted; None when it must be looked at ([`Book::on_call`]). Calls
    /// with a path argument always are: the memory behind the pointer may have changed.
    pub fn repeat(&mut self, pid: i32, nr: u64, args: &[u64; 6]) -> Option<Answer> {
        let (index, answer) = *self.repeats.get(&(pid, nr, *args))?;
        self.counts[index] += 1;
        self.total += 1;
        self.dirty = true;
        Some(answer)
    }

    /// Remembers a denied call for [`Book::repeat`].
    pub fn remember(&mut self, pid: i32, nr: u64, call: &Call, answer: Answer) {
        if self.train || decode::path_arg(&call.syscall).is_some() {
            return;
        }
        let args = decode::describe(&call.syscall, &call.args);
        let line = decide(&self.policy, self.whitelist, &call.syscall, &call.args).rule.map(|r| r.span.line);
        let key: Key = (call.syscall.clone(), args, call.path.clone(), call.comm.clone(), line);
        let Some(index) = self.index.get(&key).copied() else { return };
        if self.repeats.len() >= MAX_REPEATS {
            self.repeats.clear();
        }
        self.repeats.insert((pid, nr, call.args), (index, answer));
    }

    pub fn training(&self) -> bool {
        self.train
    }

    /// True when the path argument of `syscall` is worth reading.
    pub fn wants_path(&self, syscall: &str) -> bool {
        !self.train && decode::path_arg(syscall).is_some()
    }

    /// True when an allowed `call` is an open whose path may be missing from the sandbox (and
    /// the hint cap is not reached): absolute, not under /proc, /sys or /dev, not creating.
    pub fn wants_hint(&self, call: &Call) -> bool {
        let flags = match call.syscall.as_str() {
            "open" => call.args[1],
            "openat" => call.args[2],
            "openat2" => 0, // the flags are in a struct; O_CREAT opens are rare enough
            _ => return false,
        };
        let Some(path) = call.path.as_deref() else { return false };
        self.hinting
            && self.hints.len() < MAX_HINTS
            && flags & libc::O_CREAT as u64 == 0
            && path.starts_with('/')
            && !["/proc/", "/sys/", "/dev/"].iter().any(|p| path.starts_with(p))
            && !self.hints.iter().any(|h| h == path)
    }

    /// Records a call and decides the answer.
    pub fn on_call(&mut self, call: &Call) -> Answer {
        if self.train {
            self.training.record(&call.syscall, &call.args);
            return Answer::Continue;
        }
        let verdict = decide(&self.policy, self.whitelist, &call.syscall, &call.args);
        let answer = match verdict.action {
            Action::Errno(n) if self.enforce => Answer::Errno(i32::from(n)),
            _ => Answer::Continue,
        };
        if !verdict.denies() {
            return answer;
        }
        let line = verdict.rule.map(|r| r.span.line);
        let args = decode::describe(&call.syscall, &call.args);
        let key: Key = (call.syscall.clone(), args.clone(), call.path.clone(), call.comm.clone(), line);
        self.total += 1;
        self.dirty = true;
        if let Some(i) = self.index.get(&key) {
            self.counts[*i] += 1;
            return answer;
        }
        if self.denials.len() >= MAX_DENIALS {
            self.dropped += 1;
            return answer;
        }
        let outcome = match (answer, verdict.action) {
            (Answer::Errno(n), _) => consts::errno_name(n as u16).map(str::to_string).unwrap_or(n.to_string()),
            (Answer::Continue, Action::Kill) if self.enforce => "killed".into(),
            (Answer::Continue, Action::Trap) if self.enforce => "SIGSYS".into(),
            (Answer::Continue, _) => "allowed (audit)".into(),
        };
        let denial = Denial {
            id: self.denials.len() as u32 + 1,
            syscall: call.syscall.clone(),
            args,
            path: call.path.clone(),
            process: call.comm.clone(),
            pid: call.pid,
            outcome,
            rule: verdict.rule.map(|r| report::rule_ref(&self.policy, r)),
            policy: self.policy.origin.display().to_string(),
            suggestion: report::suggestion(self.whitelist, &call.syscall, &call.args, verdict.rule),
        };
        self.messages.push_back(report::message(report::DENIAL_PREFIX, &denial));
        self.index.insert(key, self.denials.len());
        self.denials.push(denial);
        self.counts.push(1);
        answer
    }

    /// Records a path the program could not open in the sandbox that exists on the host.
    pub fn on_missing_path(&mut self, call: &Call, path: &str) {
        if self.hints.len() >= MAX_HINTS || self.hints.iter().any(|p| p == path) {
            return;
        }
        self.hints.push(path.to_string());
        let item = serde_json::json!({ "path": path, "read_only": true });
        let hint = Hint {
            syscall: call.syscall.clone(),
            path: path.to_string(),
            process: call.comm.clone(),
            suggestion: format!("\"whitelist\": [{item}]"),
        };
        self.messages.push_back(report::message(report::HINT_PREFIX, &hint));
    }

    /// The policy calls are evaluated against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Queues an informational log message about the policy itself ([`Book::take_notes`]).
    pub fn note(&mut self, message: String) {
        self.notes.push(message);
    }

    /// Messages [`Book::note`] queued since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn has_messages(&self) -> bool {
        !self.messages.is_empty()
    }

    /// Log messages recorded since the last call.
    pub fn take_messages(&mut self) -> Vec<String> {
        self.messages.drain(..).collect()
    }

    /// The counts as a log message, when they changed since the last one and that one is
    /// [`COUNTS_EVERY`] old (or `force`, when there is anything to count).
    pub fn counts_message(&mut self, force: bool) -> Option<String> {
        let due = self.counted_at.is_none_or(|t| t.elapsed() >= COUNTS_EVERY);
        if !(self.dirty && due || force && self.total > 0) {
            return None;
        }
        self.dirty = false;
        self.counted_at = Some(Instant::now());
        let counts = Counts {
            total: self.total,
            counts: self.counts.iter().enumerate().map(|(i, n)| (i as u32 + 1, *n)).collect(),
            dropped: self.dropped,
        };
        Some(report::message(report::COUNTS_PREFIX, &counts))
    }

    /// What training recorded so far, taken (later calls start a new record).
    pub fn take_training(&mut self) -> Option<Training> {
        if !self.train || self.training.calls.is_empty() {
            return None;
        }
        Some(std::mem::replace(&mut self.training, Training { runs: 0, ..Training::default() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_profiles::seccomp::parse_policy;
    use std::path::Path;

    fn call(syscall: &str, args: [u64; 6]) -> Call {
        Call { syscall: syscall.into(), args, pid: 7, comm: "probe".into(), path: None }
    }

    fn blacklist() -> Policy {
        parse_policy(
            "# header\nptrace: 1\nsocket: arg0 == AF_NETLINK\nkeyctl: return EACCES\n",
            Path::new("/etc/b.seccomp"),
        )
        .unwrap()
    }

    #[test]
    fn enforcing_answers_the_errno_and_records_the_rule() {
        let mut b = Book::new(blacklist(), SeccompMode::Blacklist, true);
        assert_eq!(b.on_call(&call("ptrace", [0; 6])), Answer::Errno(libc::EPERM));
        assert_eq!(b.on_call(&call("ptrace", [0; 6])), Answer::Errno(libc::EPERM));
        assert_eq!(b.on_call(&call("keyctl", [0; 6])), Answer::Errno(libc::EACCES));
        assert_eq!(b.on_call(&call("socket", [1, 1, 0, 0, 0, 0])), Answer::Continue);
        let msgs = b.take_messages();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        let d: Denial = report::parse(report::DENIAL_PREFIX, &msgs[0]).unwrap();
        assert_eq!((d.id, d.syscall.as_str(), d.outcome.as_str()), (1, "ptrace", "EPERM"));
        let rule = d.rule.unwrap();
        assert_eq!((rule.file.as_str(), rule.line), ("/etc/b.seccomp", 2));
        let c: Counts = report::parse(report::COUNTS_PREFIX, &b.counts_message(false).unwrap()).unwrap();
        assert_eq!((c.total, c.counts), (3, vec![(1, 2), (2, 1)]));
        assert_eq!(b.counts_message(false), None);
        b.on_call(&call("ptrace", [0; 6]));
        assert_eq!(b.counts_message(false), None, "counts again within COUNTS_EVERY");
        assert!(b.counts_message(true).is_some());
    }

    #[test]
    fn notes_are_kept_apart_from_the_records() {
        let mut b = Book::new(blacklist(), SeccompMode::Blacklist, true);
        b.note("seccomp: /etc/w.seccomp: line 2: getdents also allows getdents64".into());
        b.on_call(&call("ptrace", [0; 6]));
        assert_eq!(b.take_messages().len(), 1, "the denial only");
        assert_eq!(b.take_notes().len(), 1);
        assert!(b.take_notes().is_empty());
    }

    #[test]
    fn audit_lets_everything_run_and_whitelists_name_their_default() {
        let mut b = Book::new(blacklist(), SeccompMode::Blacklist, false);
        assert_eq!(b.on_call(&call("socket", [16, 3, 0, 0, 0, 0])), Answer::Continue);
        let d: Denial = report::parse(report::DENIAL_PREFIX, &b.take_messages()[0]).unwrap();
        assert_eq!((d.outcome.as_str(), d.rule.unwrap().line), ("allowed (audit)", 3));
        assert!(d.args.contains("AF_NETLINK"), "{}", d.args);
        let wl = parse_policy("read: 1\n", Path::new("w")).unwrap();
        let mut b = Book::new(wl, SeccompMode::Whitelist, true);
        assert_eq!(b.on_call(&call("sysinfo", [0; 6])), Answer::Errno(libc::EPERM));
        let d: Denial = report::parse(report::DENIAL_PREFIX, &b.take_messages()[0]).unwrap();
        assert_eq!((d.rule, d.suggestion.as_str()), (None, "sysinfo: 1"));
    }

    #[test]
    fn distinct_denials_are_capped_but_still_counted() {
        let wl = parse_policy("read: 1\n", Path::new("w")).unwrap();
        let mut b = Book::new(wl, SeccompMode::Whitelist, true);
        for i in 0..(MAX_DENIALS as u64 + 10) {
            b.on_call(&call("ioctl", [0, i, 0, 0, 0, 0]));
        }
        assert_eq!(b.take_messages().len(), MAX_DENIALS);
        let c: Counts = report::parse(report::COUNTS_PREFIX, &b.counts_message(false).unwrap()).unwrap();
        assert_eq!((c.total, c.dropped), (MAX_DENIALS as u64 + 10, 10));
    }

    #[test]
    fn repeated_calls_take_the_fast_path() {
        let mut b = Book::new(blacklist(), SeccompMode::Blacklist, true);
        let c = call("ptrace", [1, 2, 3, 0, 0, 0]);
        assert_eq!(b.repeat(7, 101, &c.args), None);
        let answer = b.on_call(&c);
        b.remember(7, 101, &c, answer);
        assert_eq!(b.repeat(7, 101, &c.args), Some(Answer::Errno(libc::EPERM)));
        assert_eq!(b.repeat(8, 101, &c.args), None, "another process");
        let counts: Counts = report::parse(report::COUNTS_PREFIX, &b.counts_message(false).unwrap()).unwrap();
        assert_eq!(counts.counts, vec![(1, 2)]);
        // An allowed call is never remembered: the next one is evaluated again.
        let ok = call("socket", [1, 1, 0, 0, 0, 0]);
        let answer = b.on_call(&ok);
        b.remember(7, 41, &ok, answer);
        assert_eq!(b.repeat(7, 41, &ok.args), None);
    }

    #[test]
    fn training_lets_everything_run_and_records_it() {
        let mut b = Book::new(Policy::default(), SeccompMode::Train, false);
        assert_eq!(b.on_call(&call("socket", [2, 1, 0, 0, 0, 0])), Answer::Continue);
        assert!(b.take_messages().is_empty());
        let t = b.take_training().unwrap();
        assert_eq!(t.calls["socket"].count, 1);
        assert!(b.take_training().is_none());
    }
}
