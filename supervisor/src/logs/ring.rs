//! The records kept for `oz logs`: one lane per owner (a user, or the daemon for its own
//! events). A lane holds at most its quota of records and bytes, so one user's flood only
//! ever evicts that user's own records. Over all lanes a global cap holds; should that be
//! reached (many owners at their quota), the oldest record of the largest lane goes, so an
//! owner always keeps at least an equal share.

use super::LogFilter;
use oz_wire::LogRecord;
use std::collections::{HashMap, VecDeque};

/// Bytes a record is charged: its text plus the bookkeeping around it.
pub fn cost(rec: &LogRecord) -> usize {
    rec.message.len() + rec.profile.as_ref().map_or(0, |p| p.len()) + 96
}

pub struct Entry {
    pub seq: u64,
    pub owner: Option<u32>,
    pub rec: LogRecord,
}

#[derive(Default)]
struct Lane {
    entries: VecDeque<Entry>,
    bytes: usize,
}

pub struct Ring {
    lanes: HashMap<Option<u32>, Lane>,
    next_seq: u64,
    len: usize,
    bytes: usize,
    max_len: usize,
    max_bytes: usize,
    lane_len: usize,
    lane_bytes: usize,
}

/// Records and bytes, for one lane or all.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub records: usize,
    pub bytes: usize,
}

impl Ring {
    pub fn new(lane: Cap, total: Cap) -> Ring {
        Ring {
            lanes: HashMap::new(),
            next_seq: 1,
            len: 0,
            bytes: 0,
            max_len: total.records.max(1),
            max_bytes: total.bytes,
            lane_len: lane.records.max(1),
            lane_bytes: lane.bytes,
        }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn push(&mut self, owner: Option<u32>, rec: LogRecord) {
        let c = cost(&rec);
        while let Some(lane) = self.lanes.get(&owner) {
            if lane.entries.len() < self.lane_len && lane.bytes + c <= self.lane_bytes {
                break;
            }
            self.evict_from(owner);
        }
        while self.len > 0 && (self.len >= self.max_len || self.bytes + c > self.max_bytes) {
            self.evict(self.len >= self.max_len);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let lane = self.lanes.entry(owner).or_default();
        lane.entries.push_back(Entry { seq, owner, rec });
        lane.bytes += c;
        self.len += 1;
        self.bytes += c;
    }

    /// Drop the oldest record of the lane holding the most records (`by_count`) or bytes.
    fn evict(&mut self, by_count: bool) {
        let Some(key) = self
            .lanes
            .iter()
            .max_by_key(|(_, l)| if by_count { (l.entries.len(), l.bytes) } else { (l.bytes, l.entries.len()) })
            .map(|(k, _)| *k)
        else {
            return;
        };
        self.evict_from(key);
    }

    /// Drop the oldest record of `key`'s lane (and the lane once empty).
    fn evict_from(&mut self, key: Option<u32>) {
        let Some(lane) = self.lanes.get_mut(&key) else { return };
        if let Some(e) = lane.entries.pop_front() {
            let c = cost(&e.rec);
            lane.bytes -= c;
            self.bytes -= c;
            self.len -= 1;
        }
        if lane.entries.is_empty() {
            self.lanes.remove(&key);
        }
    }

    /// The sequence number of the oldest of the last `count` records `filter` accepts, or None
    /// when it accepts none.
    pub fn start_of_last(&self, filter: &LogFilter, count: Option<u32>) -> Option<u64> {
        let mut seqs: Vec<u64> = self.visible(filter).map(|e| e.seq).collect();
        seqs.sort_unstable();
        let skip = seqs.len().saturating_sub(count.map_or(usize::MAX, |c| c as usize));
        seqs.get(skip).copied()
    }

    /// Records `filter` accepts with `from <= seq < until`, oldest first, stopping after
    /// `max_bytes` worth (at least one record).
    pub fn page(&self, filter: &LogFilter, from: u64, until: u64, max_bytes: usize) -> Vec<(u64, LogRecord)> {
        let mut hits: Vec<&Entry> = self.visible(filter).filter(|e| e.seq >= from && e.seq < until).collect();
        hits.sort_unstable_by_key(|e| e.seq);
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in hits {
            bytes += cost(&e.rec);
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push((e.seq, e.rec.clone()));
        }
        out
    }

    fn visible<'a>(&'a self, filter: &'a LogFilter) -> impl Iterator<Item = &'a Entry> + 'a {
        self.lanes
            .iter()
            .filter(move |(owner, _)| crate::access::can_read_log(filter.caller, **owner))
            .flat_map(|(_, l)| l.entries.iter())
            .filter(move |e| filter.accepts(e.owner, &e.rec))
    }

    #[cfg(test)]
    pub fn totals(&self) -> (usize, usize) {
        (self.len, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::LogLevel;

    fn rec(sandbox: Option<u64>, msg: &str) -> LogRecord {
        LogRecord { ts: 1, level: LogLevel::Info, sandbox, profile: None, message: msg.into() }
    }

    fn messages(r: &Ring, caller: u32) -> Vec<String> {
        let f = LogFilter { caller, sandbox: None };
        r.page(&f, 0, u64::MAX, usize::MAX).into_iter().map(|(_, r)| r.message).collect()
    }

    fn cap(records: usize, bytes: usize) -> Cap {
        Cap { records, bytes }
    }

    #[test]
    fn a_flood_stays_within_its_quota() {
        let mut r = Ring::new(cap(5, usize::MAX), cap(100, usize::MAX));
        for i in 0..5 {
            r.push(Some(1000), rec(Some(1), &format!("a{i}")));
        }
        for i in 0..100 {
            r.push(Some(1001), rec(Some(2), &format!("b{i}")));
        }
        assert_eq!(messages(&r, 1000), (0..5).map(|i| format!("a{i}")).collect::<Vec<_>>());
        assert_eq!(messages(&r, 1001), (95..100).map(|i| format!("b{i}")).collect::<Vec<_>>());
        assert_eq!(r.totals().0, 10);
    }

    #[test]
    fn at_the_global_cap_the_largest_lane_gives_way() {
        let mut r = Ring::new(cap(1000, usize::MAX), cap(10, usize::MAX));
        for i in 0..3 {
            r.push(Some(1000), rec(Some(1), &format!("a{i}")));
        }
        for i in 0..100 {
            r.push(Some(1001), rec(Some(2), &format!("b{i}")));
        }
        assert_eq!(messages(&r, 1000), ["a0", "a1", "a2"]);
        assert_eq!(messages(&r, 1001), (93..100).map(|i| format!("b{i}")).collect::<Vec<_>>());
        assert_eq!(r.totals().0, 10);
    }

    #[test]
    fn byte_cap_holds_and_evicts_the_largest_lane() {
        let big = "x".repeat(1000);
        let mut r = Ring::new(cap(1000, usize::MAX), cap(1000, 10 * cost(&rec(Some(1), &big))));
        r.push(Some(1000), rec(Some(1), "small"));
        for _ in 0..50 {
            r.push(Some(1001), rec(Some(2), &big));
        }
        assert!(r.totals().1 <= 10 * cost(&rec(Some(1), &big)));
        assert_eq!(messages(&r, 1000), ["small"]);
    }

    #[test]
    fn last_count_and_pages() {
        let mut r = Ring::new(cap(100, usize::MAX), cap(100, usize::MAX));
        for i in 0..10 {
            r.push(None, rec(None, &format!("d{i}")));
        }
        let f = LogFilter { caller: 0, sandbox: None };
        let start = r.start_of_last(&f, Some(3)).unwrap();
        let page = r.page(&f, start, r.next_seq(), cost(&rec(None, "d0")) * 2);
        assert_eq!(page.iter().map(|(_, r)| r.message.as_str()).collect::<Vec<_>>(), ["d7", "d8"]);
        assert!(r.start_of_last(&LogFilter { caller: 1000, sandbox: None }, None).is_none());
    }
}
