//! The log pipeline: every slog record of the daemon and every agent `Log` message lands here,
//! goes to `<log_dir>/oz-daemon.log` (and `<log_dir>/sandbox-<id>-<profile>.log` when it is about
//! a sandbox), into a ring buffer served by `Logs`, and to live `follow` subscribers.

use crate::access;
use oz_wire::{LogLevel, LogRecord};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Records kept for `oz logs`.
pub const RING_CAPACITY: usize = 1000;

/// Which records a reader gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFilter {
    pub caller: u32,
    pub sandbox: Option<u64>,
}

struct Entry {
    owner: Option<u32>,
    rec: LogRecord,
}

impl LogFilter {
    fn accepts(&self, e: &Entry) -> bool {
        access::can_read_log(self.caller, e.owner) && !matches!(self.sandbox, Some(id) if e.rec.sandbox != Some(id))
    }
}

struct Subscriber {
    filter: LogFilter,
    tx: UnboundedSender<LogRecord>,
}

struct Inner {
    ring: VecDeque<Entry>,
    capacity: usize,
    subscribers: Vec<Subscriber>,
    log_dir: Option<PathBuf>,
    daemon_file: Option<File>,
    /// Sandbox id -> (owner uid, profile name); kept after the sandbox ends so that its
    /// records stay readable by its owner.
    owners: HashMap<u64, (u32, String)>,
    sandbox_files: HashMap<u64, File>,
}

/// Shared by the slog drain (any thread) and the daemon's tasks.
pub struct LogHub {
    inner: Mutex<Inner>,
    /// The last lines each sandbox's agent sent.
    pub tails: crate::tails::Tails,
}

/// Log files hold program output: readable by root only (users read theirs through `Logs`).
pub fn open_append(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path).ok()
}

impl LogHub {
    /// A hub writing files under `log_dir` (created if missing; None = no files).
    pub fn new(log_dir: Option<&Path>, capacity: usize) -> Arc<LogHub> {
        let log_dir = log_dir.and_then(|d| std::fs::create_dir_all(d).ok().map(|_| d.to_path_buf()));
        let daemon_file = log_dir.as_deref().and_then(|d| open_append(&d.join("oz-daemon.log")));
        Arc::new(LogHub {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity),
                capacity,
                subscribers: Vec::new(),
                log_dir,
                daemon_file,
                owners: HashMap::new(),
                sandbox_files: HashMap::new(),
            }),
            tails: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember who owns a sandbox's records and open its log file.
    pub fn register_sandbox(&self, id: u64, uid: u32, profile: &str) {
        let mut inner = self.lock();
        inner.owners.insert(id, (uid, profile.to_string()));
        if let Some(dir) = inner.log_dir.clone() {
            let safe: String = profile.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
            if let Some(f) = open_append(&dir.join(format!("sandbox-{id}-{safe}.log"))) {
                inner.sandbox_files.insert(id, f);
            }
        }
    }

    /// The owner of a sandbox's records, if the sandbox ever existed in this daemon's life.
    pub fn owner(&self, id: u64) -> Option<u32> {
        self.lock().owners.get(&id).map(|o| o.0)
    }

    /// Close a finished sandbox's log file (its records stay readable).
    pub fn sandbox_ended(&self, id: u64) {
        self.tails.ended(id);
        self.lock().sandbox_files.remove(&id);
    }

    /// Add a record: files, ring, subscribers.
    pub fn push(&self, mut rec: LogRecord) {
        let mut inner = self.lock();
        let owner = rec.sandbox.and_then(|id| inner.owners.get(&id).cloned());
        if rec.profile.is_none() {
            rec.profile = owner.as_ref().map(|o| o.1.clone());
        }
        let owner = owner.map(|o| o.0);
        let line = format_line(&rec);
        if let Some(f) = inner.daemon_file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
        if let Some(f) = rec.sandbox.and_then(|id| inner.sandbox_files.get_mut(&id)) {
            let _ = f.write_all(line.as_bytes());
        }
        let entry = Entry { owner, rec };
        inner.subscribers.retain(|s| !s.filter.accepts(&entry) || s.tx.send(entry.rec.clone()).is_ok());
        inner.subscribers.retain(|s| !s.tx.is_closed());
        if inner.ring.len() == inner.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(entry);
    }

    /// The last `count` (default: all buffered) records `filter` accepts.
    pub fn recent(&self, filter: LogFilter, count: Option<u32>) -> Vec<LogRecord> {
        let inner = self.lock();
        recent_locked(&inner, filter, count)
    }

    /// The recent records and a receiver for every later one, with no gap between them.
    pub fn subscribe(&self, filter: LogFilter, count: Option<u32>) -> (Vec<LogRecord>, UnboundedReceiver<LogRecord>) {
        let mut inner = self.lock();
        let backlog = recent_locked(&inner, filter, count);
        let (tx, rx) = unbounded_channel();
        inner.subscribers.push(Subscriber { filter, tx });
        (backlog, rx)
    }
}

fn recent_locked(inner: &Inner, filter: LogFilter, count: Option<u32>) -> Vec<LogRecord> {
    let mut out: Vec<LogRecord> =
        inner.ring.iter().rev().filter(|e| filter.accepts(e)).take(count.map_or(usize::MAX, |c| c as usize)).map(|e| e.rec.clone()).collect();
    out.reverse();
    out
}

/// One line of a log file.
pub fn format_line(rec: &LogRecord) -> String {
    let secs = rec.ts / 1000;
    let ms = rec.ts % 1000;
    let scope = match (&rec.sandbox, &rec.profile) {
        (Some(id), Some(p)) => format!(" [{id}:{p}]"),
        (Some(id), None) => format!(" [{id}]"),
        _ => String::new(),
    };
    format!("{secs}.{ms:03} {}{scope} {}\n", rec.level, rec.message)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A slog drain feeding the hub.
pub struct HubDrain(pub Arc<LogHub>);

impl slog::Drain for HubDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = KvCollector::default();
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let mut message = record.msg().to_string();
        for (k, v) in &kv.rest {
            message.push_str(&format!(" {k}={v}"));
        }
        self.0.push(LogRecord {
            ts: now_ms(),
            level: level_of(record.level()),
            sandbox: kv.sandbox,
            profile: kv.profile,
            message,
        });
        Ok(())
    }
}

pub fn level_of(l: slog::Level) -> LogLevel {
    match l {
        slog::Level::Critical => LogLevel::Critical,
        slog::Level::Error => LogLevel::Error,
        slog::Level::Warning => LogLevel::Warning,
        slog::Level::Info => LogLevel::Info,
        slog::Level::Debug => LogLevel::Debug,
        slog::Level::Trace => LogLevel::Trace,
    }
}

/// Log a message at a level known only at run time (agent records).
pub fn log_at(log: &slog::Logger, level: LogLevel, msg: &str) {
    match level {
        LogLevel::Critical => slog::crit!(log, "{}", msg),
        LogLevel::Error => slog::error!(log, "{}", msg),
        LogLevel::Warning => slog::warn!(log, "{}", msg),
        LogLevel::Info => slog::info!(log, "{}", msg),
        LogLevel::Debug => slog::debug!(log, "{}", msg),
        LogLevel::Trace => slog::trace!(log, "{}", msg),
    }
}

#[derive(Default)]
struct KvCollector {
    sandbox: Option<u64>,
    profile: Option<String>,
    rest: Vec<(String, String)>,
}

impl slog::Serializer for KvCollector {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let v = val.to_string();
        match key {
            "sandbox" if self.sandbox.is_none() => self.sandbox = v.parse().ok(),
            "profile" if self.profile.is_none() => self.profile = Some(v),
            "sandbox" | "profile" => {}
            _ => self.rest.push((key.to_string(), v)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sandbox: Option<u64>, msg: &str) -> LogRecord {
        LogRecord { ts: 1, level: LogLevel::Info, sandbox, profile: None, message: msg.into() }
    }

    #[test]
    fn ring_keeps_the_last_records_and_filters_by_owner() {
        let hub = LogHub::new(None, 3);
        hub.register_sandbox(1, 1000, "a");
        hub.register_sandbox(2, 1001, "b");
        for m in ["d0", "x", "y", "z"] {
            hub.push(rec(None, m));
        }
        hub.push(rec(Some(1), "one"));
        hub.push(rec(Some(2), "two"));
        let all: Vec<_> = hub.recent(LogFilter { caller: 0, sandbox: None }, None).into_iter().map(|r| r.message).collect();
        assert_eq!(all, ["z", "one", "two"]);
        let mine: Vec<_> = hub.recent(LogFilter { caller: 1000, sandbox: None }, None).into_iter().map(|r| r.message).collect();
        assert_eq!(mine, ["one"]);
        assert!(hub.recent(LogFilter { caller: 1001, sandbox: Some(1) }, None).is_empty());
        assert_eq!(hub.recent(LogFilter { caller: 1000, sandbox: Some(1) }, None)[0].profile.as_deref(), Some("a"));
    }

    #[test]
    fn subscribers_get_live_records_they_may_read() {
        let hub = LogHub::new(None, 10);
        hub.register_sandbox(1, 1000, "a");
        hub.push(rec(Some(1), "before"));
        let (backlog, mut rx) = hub.subscribe(LogFilter { caller: 1000, sandbox: Some(1) }, Some(5));
        assert_eq!(backlog.len(), 1);
        hub.push(rec(None, "daemon"));
        hub.push(rec(Some(1), "after"));
        assert_eq!(rx.try_recv().unwrap().message, "after");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn files_get_daemon_and_sandbox_lines() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(Some(dir.path()), 10);
        hub.register_sandbox(4, 1000, "fire/fox");
        hub.push(rec(Some(4), "hello sandbox"));
        hub.push(rec(None, "hello daemon"));
        let daemon = std::fs::read_to_string(dir.path().join("oz-daemon.log")).unwrap();
        assert!(daemon.contains("info [4:fire/fox] hello sandbox") && daemon.contains("hello daemon"), "{daemon}");
        let sb_path = dir.path().join("sandbox-4-fire_fox.log");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sb_path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let sb = std::fs::read_to_string(&sb_path).unwrap();
        assert!(sb.contains("hello sandbox") && !sb.contains("hello daemon"), "{sb}");
    }

    #[test]
    fn slog_records_carry_sandbox_and_profile() {
        use slog::Drain;
        let hub = LogHub::new(None, 10);
        let log = slog::Logger::root(HubDrain(hub.clone()).fuse(), slog::o!());
        slog::warn!(log, "agent died"; "sandbox" => 9u64, "profile" => "x", "pid" => 42);
        let r = &hub.recent(LogFilter { caller: 0, sandbox: Some(9) }, None)[0];
        assert_eq!((r.level, r.profile.as_deref(), r.message.as_str()), (LogLevel::Warning, Some("x"), "agent died pid=42"));
    }
}
