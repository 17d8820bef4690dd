//! Live readers of the log (`oz logs -f`): each has a bounded queue. Records that do not fit
//! are counted, and the reader gets one "skipped N records" marker where the gap is.

use super::ring::cost;
use super::{now_ms, LogFilter};
use oz_wire::{LogLevel, LogRecord};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Records one follower may have queued.
pub const QUEUE_RECORDS: usize = 256;
/// Bytes (as charged by [`cost`]) one follower may have queued.
pub const QUEUE_BYTES: usize = 256 * 1024;

enum Item {
    Record(LogRecord),
    Skipped(u64),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    /// Records dropped since the last marker was queued.
    skipped: u64,
}

pub struct Follower {
    pub filter: LogFilter,
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Follower {
    pub fn new(filter: LogFilter) -> Follower {
        Follower { filter, queue: Mutex::new(Queue::default()), ready: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a record, or count it as skipped when the queue is full.
    pub fn offer(&self, rec: &LogRecord) {
        let mut q = self.lock();
        let c = cost(rec);
        let marker = usize::from(q.skipped > 0);
        if q.items.len() + 1 + marker > QUEUE_RECORDS || q.bytes + c > QUEUE_BYTES {
            q.skipped += 1;
            return;
        }
        if q.skipped > 0 {
            let n = std::mem::take(&mut q.skipped);
            q.items.push_back(Item::Skipped(n));
        }
        q.items.push_back(Item::Record(rec.clone()));
        q.bytes += c;
        drop(q);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<LogRecord> {
        let mut q = self.lock();
        match q.items.pop_front() {
            Some(Item::Record(r)) => {
                q.bytes -= cost(&r);
                Some(r)
            }
            Some(Item::Skipped(n)) => Some(self.marker(n)),
            None if q.skipped > 0 => {
                let n = std::mem::take(&mut q.skipped);
                Some(self.marker(n))
            }
            None => None,
        }
    }

    /// The next record (or marker), waiting for one.
    pub async fn next(&self) -> LogRecord {
        loop {
            if let Some(r) = self.pop() {
                return r;
            }
            self.ready.notified().await;
        }
    }

    fn marker(&self, n: u64) -> LogRecord {
        LogRecord {
            ts: now_ms(),
            level: LogLevel::Warning,
            sandbox: self.filter.sandbox,
            profile: None,
            message: format!("skipped {n} records: this reader fell behind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str) -> LogRecord {
        LogRecord { ts: 1, level: LogLevel::Info, sandbox: None, profile: None, message: msg.into() }
    }

    fn drain(f: &Follower) -> Vec<String> {
        std::iter::from_fn(|| f.pop()).map(|r| r.message).collect()
    }

    #[test]
    fn a_full_queue_counts_skips_and_marks_the_gap() {
        let f = Follower::new(LogFilter { caller: 0, sandbox: None });
        for i in 0..QUEUE_RECORDS + 10 {
            f.offer(&rec(&format!("r{i}")));
        }
        let got = drain(&f);
        assert_eq!(got.len(), QUEUE_RECORDS + 1);
        assert_eq!(got[QUEUE_RECORDS - 1], format!("r{}", QUEUE_RECORDS - 1));
        assert_eq!(got[QUEUE_RECORDS], "skipped 10 records: this reader fell behind");
        f.offer(&rec("x"));
        for _ in 0..3 {
            f.offer(&rec("y"));
        }
        assert_eq!(drain(&f), ["x", "y", "y", "y"]);
    }

    #[test]
    fn the_marker_comes_before_records_after_the_gap() {
        let f = Follower::new(LogFilter { caller: 0, sandbox: None });
        let big = "z".repeat(QUEUE_BYTES / 2);
        f.offer(&rec(&big));
        f.offer(&rec(&big));
        f.offer(&rec(&big));
        assert_eq!(f.pop().unwrap().message, big);
        f.offer(&rec("after"));
        assert_eq!(drain(&f), ["skipped 2 records: this reader fell behind", "after"]);
    }
}
