//! The last lines each sandbox's agent sent (the program's output among them), kept apart from
//! the daemon's own records so that a launch that failed at once can show what the program said.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Lines kept per sandbox.
pub const LINES: usize = 8;

/// Ended sandboxes whose lines are still kept (a launch check may read them just after the end).
const ENDED_KEPT: usize = 64;

#[derive(Default)]
pub struct Tails {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: HashMap<u64, VecDeque<String>>,
    ended: VecDeque<u64>,
}

impl Tails {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, id: u64, line: &str) {
        let mut inner = self.lock();
        let tail = inner.lines.entry(id).or_default();
        if tail.len() == LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    }

    /// The last lines of sandbox `id`, oldest first.
    pub fn get(&self, id: u64) -> Vec<String> {
        self.lock().lines.get(&id).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }

    /// Sandbox `id` ended: its lines go once `ENDED_KEPT` later sandboxes have ended.
    pub fn ended(&self, id: u64) {
        let mut inner = self.lock();
        inner.ended.push_back(id);
        if inner.ended.len() > ENDED_KEPT {
            if let Some(old) = inner.ended.pop_front() {
                inner.lines.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_forgets_long_ended_sandboxes() {
        let t = Tails::default();
        for i in 0..20 {
            t.push(1, &format!("l{i}"));
        }
        assert_eq!(t.get(1), (12..20).map(|i| format!("l{i}")).collect::<Vec<_>>());
        t.ended(1);
        assert_eq!(t.get(1).len(), LINES, "kept just after the end");
        for id in 2..2 + ENDED_KEPT as u64 {
            t.push(id, "x");
            t.ended(id);
        }
        assert!(t.get(1).is_empty());
        assert_eq!(t.get(2), ["x"]);
    }
}
