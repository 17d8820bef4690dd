//! The rate limit on a sandbox's log records: two token buckets (records/s and bytes/s). Records
//! beyond either are dropped and counted; the count goes out as one "N records dropped" record
//! at most once per [`NOTICE_EVERY`], when output is admitted again or on the next timer tick.
//! Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// Records per second admitted in the long run, and the burst allowed above it.
pub const RECORDS_PER_SEC: f64 = 500.0;
pub const RECORD_BURST: f64 = 2000.0;
/// Message bytes per second admitted in the long run, and the burst allowed above it.
pub const BYTES_PER_SEC: f64 = 256.0 * 1024.0;
pub const BYTE_BURST: f64 = 1024.0 * 1024.0;
/// Least time between two "records dropped" notices.
pub const NOTICE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LogLimiter {
    records: f64,
    bytes: f64,
    refilled: Instant,
    dropped: u64,
    last_notice: Option<Instant>,
}

impl LogLimiter {
    pub fn new(now: Instant) -> LogLimiter {
        LogLimiter { records: RECORD_BURST, bytes: BYTE_BURST, refilled: now, dropped: 0, last_notice: None }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now.max(self.refilled);
        self.records = (self.records + dt * RECORDS_PER_SEC).min(RECORD_BURST);
        self.bytes = (self.bytes + dt * BYTES_PER_SEC).min(BYTE_BURST);
    }

    /// Whether a record of `len` message bytes may go out now; if not, it is counted as dropped.
    pub fn admit(&mut self, now: Instant, len: usize) -> bool {
        self.refill(now);
        let len = len as f64;
        if self.records >= 1.0 && self.bytes >= len.min(BYTE_BURST) {
            self.records -= 1.0;
            self.bytes -= len;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Count records dropped elsewhere (a backed-up queue to the daemon).
    pub fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// The number of records dropped since the last notice, if a notice is due now (it resets
    /// the count).
    pub fn notice_due(&mut self, now: Instant) -> Option<u64> {
        if self.dropped == 0 || self.last_notice.is_some_and(|t| now.saturating_duration_since(t) < NOTICE_EVERY) {
            return None;
        }
        self.last_notice = Some(now);
        Some(std::mem::take(&mut self.dropped))
    }

    /// The text of a notice.
    pub fn notice(n: u64) -> String {
        format!(
            "{n} records dropped (log rate limit: {RECORDS_PER_SEC} records/s, {} KiB/s per sandbox)",
            BYTES_PER_SEC / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        let admitted = (0..5000).filter(|_| l.admit(t0, 2)).count();
        assert_eq!(admitted, RECORD_BURST as usize);
        assert_eq!(l.dropped, 5000 - RECORD_BURST as u64);
        // One second later about RECORDS_PER_SEC more get through.
        let t1 = t0 + Duration::from_secs(1);
        let admitted = (0..5000).filter(|_| l.admit(t1, 2)).count();
        assert_eq!(admitted, RECORDS_PER_SEC as usize);
    }

    #[test]
    fn bytes_are_limited_too() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        let admitted = (0..100).filter(|_| l.admit(t0, 64 * 1024)).count();
        assert_eq!(admitted, 16, "1 MiB burst of 64 KiB records");
        // A record longer than the whole burst still passes when the bucket is full.
        let mut l = LogLimiter::new(t0);
        assert!(l.admit(t0, 4 << 20));
    }

    #[test]
    fn notices_are_counted_and_spaced() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        assert_eq!(l.notice_due(t0), None, "nothing dropped");
        l.count_dropped(3);
        assert_eq!(l.notice_due(t0), Some(3));
        l.count_dropped(2);
        assert_eq!(l.notice_due(t0 + Duration::from_millis(500)), None, "too soon");
        assert_eq!(l.notice_due(t0 + NOTICE_EVERY), Some(2));
        assert!(LogLimiter::notice(7).starts_with("7 records dropped"));
    }
}
