//! The log pipeline. Daemon events (slog records) go to stderr, `<log_dir>/oz-daemon.log`, the
//! ring and followers; agent records (program output) go only to the sandbox's own file, the
//! ring and followers, where just the owner and root read them.
//!
//! Memory is bounded whatever clients do. The ring keeps per owner at most [`RING_CAPACITY`]
//! records and [`LANE_BYTES`], and in all at most [`RING_BYTES`] (messages are cut at
//! [`MAX_MESSAGE`]); at most [`MAX_FOLLOWERS`] live readers each queue at most
//! [`follow::QUEUE_BYTES`]; a `Logs` request copies at most [`PAGE_BYTES`] of the ring at a
//! time, and the listener admits at most [`crate::listener::MAX_CONNECTIONS`] connections.
//! With the frame each connection encodes (< 2 * MAX_MESSAGE) that is
//! 8 MiB + 128 * 256 KiB + 512 * (32 KiB + 16 KiB) = 64 MiB for logs at most, so the daemon
//! stays well below 128 MB.

mod files;
mod follow;
mod ring;

pub use files::{secure_dir, Policy};
pub use follow::Follower;

use crate::access;
use files::LogFile;
use oz_wire::text::escape_controls;
use oz_wire::{LogLevel, LogRecord};
use ring::{Cap, Ring};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Records kept for `oz logs` per owner (a user, or the daemon's own events).
pub const RING_CAPACITY: usize = 1000;
/// Bytes kept per owner.
pub const LANE_BYTES: usize = 1024 * 1024;
/// Records and bytes kept for all owners together.
pub const RING_TOTAL: usize = 8 * RING_CAPACITY;
pub const RING_BYTES: usize = 8 * 1024 * 1024;
/// Longest message kept; longer ones are cut.
pub const MAX_MESSAGE: usize = 8 * 1024;
/// Live readers (`oz logs -f`) at once, and per user (root is only held to the total).
pub const MAX_FOLLOWERS: usize = 128;
pub const MAX_FOLLOWERS_PER_UID: usize = 32;
/// Bytes of buffered records a `Logs` request copies out of the ring at a time.
pub const PAGE_BYTES: usize = 32 * 1024;
/// Ended sandboxes whose owner is remembered (for filtering their records).
const ENDED_KEPT: usize = 4096;
/// How often old sandbox files are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Which records a reader gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFilter {
    pub caller: u32,
    pub sandbox: Option<u64>,
}

impl LogFilter {
    fn accepts(&self, owner: Option<u32>, rec: &LogRecord) -> bool {
        access::can_read_log(self.caller, owner) && !matches!(self.sandbox, Some(id) if rec.sandbox != Some(id))
    }
}

struct Sandbox {
    uid: u32,
    profile: String,
    file: Option<LogFile>,
    /// The agent's own stderr file, removed at the end if the agent wrote nothing.
    agent_stderr: Option<PathBuf>,
    ended: bool,
}

impl Sandbox {
    /// A sandbox known only by its agent's stderr file, until `register_sandbox`.
    fn unregistered() -> Sandbox {
        Sandbox { uid: 0, profile: String::new(), file: None, agent_stderr: None, ended: false }
    }
}

struct Inner {
    ring: Ring,
    followers: Vec<Weak<Follower>>,
    log_dir: Option<PathBuf>,
    policy: Policy,
    /// Daemon start (ms): part of every sandbox file name, so that a sandbox of a later daemon
    /// with the same id never writes to an earlier one's file.
    boot: u64,
    daemon_file: Option<LogFile>,
    sandboxes: BTreeMap<u64, Sandbox>,
}

/// Shared by the slog drain (any thread) and the daemon's tasks.
pub struct LogHub {
    inner: Mutex<Inner>,
    /// The last lines each sandbox's agent sent.
    pub tails: crate::tails::Tails,
}

/// Why a live reader was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    #[error("too many live log readers ({max} at once)")]
    Total { max: usize },
    #[error("too many live log readers for this user ({max} at once)")]
    PerUser { max: usize },
}

/// What a `Logs` request streams: the buffered records in pages, then (with follow) the queue.
pub struct Cursor {
    pub filter: LogFilter,
    next: u64,
    until: u64,
}

impl LogHub {
    /// A hub writing files under `log_dir` (already checked by [`secure_dir`]; None = no files).
    pub fn new(log_dir: Option<&Path>, policy: Policy) -> Arc<LogHub> {
        let lane = Cap { records: RING_CAPACITY, bytes: LANE_BYTES };
        LogHub::with_ring(log_dir, policy, lane, Cap { records: RING_TOTAL, bytes: RING_BYTES })
    }

    fn with_ring(log_dir: Option<&Path>, policy: Policy, lane: Cap, total: Cap) -> Arc<LogHub> {
        Arc::new(LogHub {
            inner: Mutex::new(Inner {
                ring: Ring::new(lane, total),
                followers: Vec::new(),
                log_dir: log_dir.map(Path::to_path_buf),
                policy,
                boot: now_ms(),
                daemon_file: log_dir.map(LogFile::daemon),
                sandboxes: BTreeMap::new(),
            }),
            tails: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember who owns a sandbox's records; its file is made with its first line.
    pub fn register_sandbox(&self, id: u64, uid: u32, profile: &str) {
        let mut inner = self.lock();
        let file = inner
            .log_dir
            .as_deref()
            .map(|d| LogFile::sandbox(d, &format!("sandbox-{id}-{}-{}", files::safe_name(profile), inner.boot)));
        let agent_stderr = inner.sandboxes.remove(&id).and_then(|s| s.agent_stderr);
        inner.sandboxes.insert(id, Sandbox { uid, profile: profile.to_string(), file, agent_stderr, ended: false });
    }

    /// A new file (0600, O_EXCL) for the stderr of sandbox `id`'s agent.
    pub fn agent_stderr(&self, id: u64) -> Option<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut inner = self.lock();
        let path = inner.log_dir.as_ref()?.join(format!("agent-{id}-{}.log", inner.boot));
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .ok()?;
        inner.sandboxes.entry(id).or_insert_with(Sandbox::unregistered).agent_stderr = Some(path);
        Some(f)
    }

    /// An unnamed file (O_TMPFILE, 0600) in the log directory for the stderr of an agent
    /// spawned before its sandbox has an id; [`LogHub::name_agent_stderr`] names it. None
    /// without a log directory; an error where its filesystem has no O_TMPFILE.
    pub fn unnamed_agent_stderr(&self) -> std::io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(dir) = self.lock().log_dir.clone() else { return Ok(None) };
        std::fs::OpenOptions::new()
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
            .map(Some)
    }

    /// Give `file` (from [`LogHub::unnamed_agent_stderr`]) the name of sandbox `id`'s agent
    /// stderr file, as [`LogHub::agent_stderr`] would have made it.
    pub fn name_agent_stderr(&self, id: u64, file: &File) {
        use std::os::fd::AsRawFd;
        let mut inner = self.lock();
        let Some(path) = inner.log_dir.as_ref().map(|d| d.join(format!("agent-{id}-{}.log", inner.boot))) else {
            return;
        };
        let (Ok(from), Ok(to)) = (
            std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())),
            std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())),
        ) else {
            return;
        };
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let linked = unsafe {
            libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
        };
        if linked != 0 {
            return;
        }
        inner.sandboxes.entry(id).or_insert_with(Sandbox::unregistered).agent_stderr = Some(path);
    }

    /// The owner of a sandbox's records, if the sandbox ever existed in this daemon's life.
    pub fn owner(&self, id: u64) -> Option<u32> {
        self.lock().sandboxes.get(&id).map(|s| s.uid)
    }

    /// Close a finished sandbox's log file (its records stay readable).
    pub fn sandbox_ended(&self, id: u64) {
        self.tails.ended(id);
        let mut inner = self.lock();
        if let Some(s) = inner.sandboxes.get_mut(&id) {
            s.file = None;
            s.ended = true;
            if let Some(p) = s.agent_stderr.take() {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let ended: Vec<u64> = inner.sandboxes.iter().filter(|(_, s)| s.ended).map(|(id, _)| *id).collect();
        for id in ended.iter().take(ended.len().saturating_sub(ENDED_KEPT)) {
            inner.sandboxes.remove(id);
        }
    }

    /// A daemon event: its file, the sandbox's file when it is about one, ring, followers.
    pub fn push(&self, rec: LogRecord) {
        self.add(rec, true);
    }

    /// A record from sandbox `id`'s agent (program output): the sandbox's file, ring and
    /// followers only.
    pub fn push_output(&self, id: u64, mut rec: LogRecord) {
        rec.sandbox = Some(id);
        rec.profile = None;
        self.add(rec, false);
    }

    fn add(&self, mut rec: LogRecord, daemon_event: bool) {
        cut(&mut rec.message, MAX_MESSAGE);
        let mut inner = self.lock();
        let inner = &mut *inner;
        let sandbox = rec.sandbox.and_then(|id| inner.sandboxes.get_mut(&id));
        let owner = sandbox.as_ref().map(|s| s.uid);
        if let Some(s) = &sandbox {
            if rec.profile.is_none() {
                rec.profile = Some(s.profile.clone());
            }
        }
        let line = format_line(&rec);
        if let Some(f) = sandbox.and_then(|s| s.file.as_mut()) {
            f.write(line.as_bytes(), &inner.policy);
        }
        if daemon_event {
            if let Some(f) = inner.daemon_file.as_mut() {
                f.write(line.as_bytes(), &inner.policy);
            }
        }
        inner.followers.retain(|w| match w.upgrade() {
            Some(f) => {
                if f.filter.accepts(owner, &rec) {
                    f.offer(&rec);
                }
                true
            }
            None => false,
        });
        inner.ring.push(owner, rec);
    }

    /// Start streaming the last `count` buffered records `filter` accepts.
    pub fn cursor(&self, filter: LogFilter, count: Option<u32>) -> Cursor {
        let inner = self.lock();
        let until = inner.ring.next_seq();
        Cursor { filter, next: inner.ring.start_of_last(&filter, count).unwrap_or(until), until }
    }

    /// The next page (at most [`PAGE_BYTES`]) of a cursor's records; empty at its end.
    pub fn page(&self, cursor: &mut Cursor) -> Vec<LogRecord> {
        let inner = self.lock();
        let page = inner.ring.page(&cursor.filter, cursor.next, cursor.until, PAGE_BYTES);
        cursor.next = page.last().map_or(cursor.until, |(seq, _)| seq + 1);
        page.into_iter().map(|(_, r)| r).collect()
    }

    /// A cursor over the buffered records and a live reader getting every later one, with no
    /// gap or overlap between them.
    pub fn follow(&self, filter: LogFilter, count: Option<u32>) -> Result<(Cursor, Arc<Follower>), FollowError> {
        let mut inner = self.lock();
        inner.followers.retain(|w| w.strong_count() > 0);
        if inner.followers.len() >= MAX_FOLLOWERS {
            return Err(FollowError::Total { max: MAX_FOLLOWERS });
        }
        let mine =
            inner.followers.iter().filter_map(Weak::upgrade).filter(|f| f.filter.caller == filter.caller).count();
        if filter.caller != access::ROOT && mine >= MAX_FOLLOWERS_PER_UID {
            return Err(FollowError::PerUser { max: MAX_FOLLOWERS_PER_UID });
        }
        let until = inner.ring.next_seq();
        let cursor = Cursor { filter, next: inner.ring.start_of_last(&filter, count).unwrap_or(until), until };
        let follower = Arc::new(Follower::new(filter));
        inner.followers.push(Arc::downgrade(&follower));
        Ok((cursor, follower))
    }

    /// Files in use now (kept by the retention sweep).
    fn open_files(&self) -> Vec<PathBuf> {
        let inner = self.lock();
        let live = inner.sandboxes.values().filter(|s| !s.ended);
        live.flat_map(|s| s.file.as_ref().map(|f| f.path().to_path_buf()).into_iter().chain(s.agent_stderr.clone()))
            .collect()
    }

    /// Delete sandbox files older than `log_retention_days` now and every hour, on a thread of
    /// its own so that a slow disk never holds up the daemon.
    pub fn start_sweeper(self: &Arc<Self>, log: slog::Logger) {
        let (dir, days) = {
            let inner = self.lock();
            (inner.log_dir.clone(), inner.policy.retention_days)
        };
        let (Some(dir), true) = (dir, days > 0) else { return };
        let hub = Arc::downgrade(self);
        let sweep_log = log.clone();
        let spawned = std::thread::Builder::new().name("oz-log-sweep".into()).spawn(move || loop {
            let Some(open) = hub.upgrade().map(|h| h.open_files()) else { return };
            let n = files::sweep(&dir, days, &open);
            if n > 0 {
                slog::info!(sweep_log, "old sandbox log files deleted"; "count" => n, "dir" => %dir.display(), "days" => days);
            }
            std::thread::sleep(SWEEP_EVERY);
        });
        if let Err(e) = spawned {
            slog::warn!(log, "cannot start the log retention sweep"; "error" => %e);
        }
    }
}

/// Cut `s` to at most `max` bytes on a character boundary, saying so.
fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let dropped = s.len();
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(&format!(" [cut: {dropped} bytes]"));
}

/// One line of a log file; control characters in the text are escaped.
pub fn format_line(rec: &LogRecord) -> String {
    let secs = rec.ts / 1000;
    let ms = rec.ts % 1000;
    let scope = match (&rec.sandbox, &rec.profile) {
        (Some(id), Some(p)) => format!(" [{id}:{}]", escape_controls(p)),
        (Some(id), None) => format!(" [{id}]"),
        _ => String::new(),
    };
    format!("{secs}.{ms:03} {}{scope} {}\n", rec.level, escape_controls(&rec.message))
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

    const NO_FILES: Policy = Policy { max_bytes: 0, keep: 0, retention_days: 0 };

    fn rec(sandbox: Option<u64>, msg: &str) -> LogRecord {
        LogRecord { ts: 1, level: LogLevel::Info, sandbox, profile: None, message: msg.into() }
    }

    fn recent(hub: &LogHub, caller: u32, sandbox: Option<u64>, count: Option<u32>) -> Vec<LogRecord> {
        let mut c = hub.cursor(LogFilter { caller, sandbox }, count);
        std::iter::from_fn(|| Some(hub.page(&mut c)).filter(|p| !p.is_empty())).flatten().collect()
    }

    fn messages(recs: Vec<LogRecord>) -> Vec<String> {
        recs.into_iter().map(|r| r.message).collect()
    }

    #[test]
    fn ring_keeps_the_last_records_and_filters_by_owner() {
        let hub = LogHub::with_ring(
            None,
            NO_FILES,
            Cap { records: 3, bytes: LANE_BYTES },
            Cap { records: 3, bytes: RING_BYTES },
        );
        hub.register_sandbox(1, 1000, "a");
        hub.register_sandbox(2, 1001, "b");
        for m in ["d0", "x", "y", "z"] {
            hub.push(rec(None, m));
        }
        hub.push(rec(Some(1), "one"));
        hub.push(rec(Some(2), "two"));
        assert_eq!(messages(recent(&hub, 0, None, None)), ["z", "one", "two"]);
        assert_eq!(messages(recent(&hub, 1000, None, None)), ["one"]);
        assert!(recent(&hub, 1001, Some(1), None).is_empty());
        assert_eq!(recent(&hub, 1000, Some(1), None)[0].profile.as_deref(), Some("a"));
        assert_eq!(messages(recent(&hub, 0, None, Some(2))), ["one", "two"]);
    }

    #[test]
    fn pages_are_bounded_and_in_order() {
        let hub = LogHub::new(None, NO_FILES);
        let line = "m".repeat(1000);
        for _ in 0..200 {
            hub.push(rec(None, &line));
        }
        let mut c = hub.cursor(LogFilter { caller: 0, sandbox: None }, None);
        let first = hub.page(&mut c);
        assert!(first.len() < 40 && !first.is_empty(), "{}", first.len());
        assert_eq!(recent(&hub, 0, None, None).len(), 200);
    }

    #[test]
    fn followers_get_live_records_they_may_read() {
        let hub = LogHub::new(None, NO_FILES);
        hub.register_sandbox(1, 1000, "a");
        hub.push(rec(Some(1), "before"));
        let (mut backlog, f) = hub.follow(LogFilter { caller: 1000, sandbox: Some(1) }, Some(5)).unwrap();
        hub.push(rec(None, "daemon"));
        hub.push_output(1, rec(None, "after"));
        assert_eq!(messages(hub.page(&mut backlog)), ["before"]);
        assert!(hub.page(&mut backlog).is_empty());
        let next = futures::executor::block_on(f.next());
        assert_eq!((next.message.as_str(), next.sandbox, next.profile.as_deref()), ("after", Some(1), Some("a")));
    }

    #[test]
    fn followers_are_limited_per_user_and_in_total() {
        let hub = LogHub::new(None, NO_FILES);
        let filter = |caller| LogFilter { caller, sandbox: None };
        let mine: Vec<_> = (0..MAX_FOLLOWERS_PER_UID).map(|_| hub.follow(filter(1000), None).unwrap()).collect();
        assert_eq!(hub.follow(filter(1000), None).err(), Some(FollowError::PerUser { max: MAX_FOLLOWERS_PER_UID }));
        drop(mine);
        assert!(hub.follow(filter(1000), None).is_ok());
        let root: Vec<_> = (0..MAX_FOLLOWERS).map_while(|_| hub.follow(filter(0), None).ok()).collect();
        assert_eq!(root.len(), MAX_FOLLOWERS);
    }

    #[test]
    fn files_get_daemon_events_and_output_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(Some(dir.path()), Policy { max_bytes: 1 << 20, keep: 1, retention_days: 0 });
        hub.register_sandbox(4, 1000, "fire/fox");
        hub.register_sandbox(5, 1000, "quiet");
        hub.push(rec(Some(4), "daemon event about 4"));
        hub.push_output(4, rec(Some(4), "\x1b[31mred\x1b[0m output"));
        hub.push(rec(None, "hello daemon"));
        let daemon = std::fs::read_to_string(dir.path().join("oz-daemon.log")).unwrap();
        assert!(
            daemon.contains("info [4:fire/fox] daemon event about 4") && daemon.contains("hello daemon"),
            "{daemon}"
        );
        assert!(!daemon.contains("output"), "{daemon}");
        let boot = hub.lock().boot;
        let sb_path = dir.path().join(format!("sandbox-4-fire_fox-{boot}.log"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sb_path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let sb = std::fs::read_to_string(&sb_path).unwrap();
        assert!(sb.contains("daemon event about 4") && !sb.contains("hello daemon"), "{sb}");
        assert!(sb.contains("[4:fire/fox] \\e[31mred\\e[0m output\n"), "{sb}");
        assert!(!dir.path().join(format!("sandbox-5-quiet-{boot}.log")).exists(), "no line, no file");
    }

    #[test]
    fn long_messages_are_cut() {
        let hub = LogHub::new(None, NO_FILES);
        hub.push(rec(None, &"é".repeat(MAX_MESSAGE)));
        let m = &recent(&hub, 0, None, None)[0].message;
        assert!(m.len() < MAX_MESSAGE + 40 && m.ends_with(&format!("[cut: {} bytes]", 2 * MAX_MESSAGE)), "{}", m.len());
    }

    #[test]
    fn slog_records_carry_sandbox_and_profile() {
        use slog::Drain;
        let hub = LogHub::new(None, NO_FILES);
        let log = slog::Logger::root(HubDrain(hub.clone()).fuse(), slog::o!());
        slog::warn!(log, "agent died"; "sandbox" => 9u64, "profile" => "x", "pid" => 42);
        let r = &recent(&hub, 0, Some(9), None)[0];
        assert_eq!(
            (r.level, r.profile.as_deref(), r.message.as_str()),
            (LogLevel::Warning, Some("x"), "agent died pid=42")
        );
    }

    #[test]
    fn an_unnamed_agent_stderr_file_gets_the_sandbox_name_or_vanishes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(Some(dir.path()), NO_FILES);
        let names = || -> Vec<String> {
            let mut v: Vec<String> =
                std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.retain(|n| n.starts_with("agent-"));
            v
        };
        let unused = hub.unnamed_agent_stderr().expect("O_TMPFILE in the log directory").unwrap();
        let mut used = hub.unnamed_agent_stderr().unwrap().unwrap();
        assert!(names().is_empty(), "{:?}", names());
        writeln!(used, "agent started").unwrap();
        hub.name_agent_stderr(7, &used);
        drop((unused, used));
        let boot = hub.lock().boot;
        assert_eq!(names(), vec![format!("agent-7-{boot}.log")]);
        assert_eq!(std::fs::read_to_string(dir.path().join(&names()[0])).unwrap(), "agent started\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path().join(&names()[0])).unwrap().permissions().mode() & 0o777, 0o600);
        // Like a file from agent_stderr, it is the sandbox's and goes when empty at its end.
        hub.register_sandbox(7, 1000, "p");
        assert_eq!(hub.lock().sandboxes[&7].agent_stderr.as_deref(), Some(dir.path().join(&names()[0]).as_path()));
    }
}
