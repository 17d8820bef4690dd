//! Training: the calls a program made (and the values of the arguments worth constraining,
//! [`decode::constrained_arg`]) turned into a whitelist in the policy language, commented with
//! counts. A previous training file is read back (with the policy parser, so a broken or
//! hand-edited file is refused with its line) and merged, so repeated runs widen one whitelist.
//!
//! ```text
//! # oz seccomp whitelist trained from 2 runs (new training runs merge into this file)
//! # runs: 2
//! # read: 5012 calls
//! read: 1
//! # socket: 3 calls (AF_UNIX 2, AF_INET 1)
//! socket: arg0 == AF_UNIX || arg0 == AF_INET
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::consts;
use super::decode;
use super::error::PolicyError;
use super::ir::{ArgPart, CmpOp, Expr};
use super::parser::parse_policy;

/// Distinct values kept per constrained argument; past this the call is allowed whatever it is.
pub const MAX_VALUES: usize = 64;

/// What one syscall was seen doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    pub count: u64,
    /// Counts per value of the constrained argument.
    pub values: BTreeMap<u64, u64>,
    /// Any value: the argument is not constrained (too many values, or an older file said so).
    pub any: bool,
}

/// Calls recorded by training, by syscall name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    pub runs: u32,
    pub calls: BTreeMap<String, CallStats>,
}

impl Training {
    /// Records one call.
    pub fn record(&mut self, syscall: &str, args: &[u64; 6]) {
        let stats = match self.calls.get_mut(syscall) {
            Some(s) => s,
            None => self.calls.entry(syscall.to_string()).or_default(),
        };
        stats.count += 1;
        if let Some(i) = decode::constrained_arg(syscall) {
            if !stats.any {
                let value = args[usize::from(i)];
                if stats.values.len() < MAX_VALUES || stats.values.contains_key(&value) {
                    *stats.values.entry(value).or_default() += 1;
                } else {
                    stats.any = true;
                }
            }
        } else {
            stats.any = true;
        }
    }

    /// Adds `other`'s runs and calls to these.
    pub fn merge(&mut self, other: &Training) {
        self.runs += other.runs;
        for (name, theirs) in &other.calls {
            let ours = self.calls.entry(name.clone()).or_default();
            ours.count += theirs.count;
            ours.any |= theirs.any;
            for (v, n) in &theirs.values {
                *ours.values.entry(*v).or_default() += n;
            }
            if ours.values.len() > MAX_VALUES {
                ours.any = true;
            }
        }
    }

    /// The whitelist, in the policy language.
    pub fn to_policy(&self) -> String {
        let total: u64 = self.calls.values().map(|s| s.count).sum();
        let mut out = format!(
            "# oz seccomp whitelist trained from {} run(s), {total} calls (new training runs merge into this file)\n# runs: {}\n",
            self.runs, self.runs
        );
        for (name, s) in &self.calls {
            let arg = decode::constrained_arg(name);
            match arg {
                Some(i) if !s.any && !s.values.is_empty() => {
                    let detail: Vec<String> =
                        s.values.iter().map(|(v, n)| format!("{} {n}", decode::value_expr(name, *v))).collect();
                    out.push_str(&format!("# {name}: {} calls ({})\n", s.count, detail.join(", ")));
                    let alts: Vec<String> =
                        s.values.keys().map(|v| format!("arg{i} == {}", decode::value_expr(name, *v))).collect();
                    out.push_str(&format!("{name}: {}\n", alts.join(" || ")));
                }
                _ => out.push_str(&format!("# {name}: {} calls\n{name}: 1\n", s.count)),
            }
        }
        out
    }

    /// A training file read back: its rules (what is allowed) and its count comments.
    pub fn from_policy(text: &str, origin: &Path) -> Result<Training, PolicyError> {
        let policy = parse_policy(text, origin)?;
        let mut t = Training::default();
        for rule in &policy.rules {
            let s = t.calls.entry(rule.syscall.clone()).or_default();
            let arg = decode::constrained_arg(&rule.syscall);
            match arg.and_then(|i| equal_values(&rule.condition, i)) {
                Some(values) if !rule.condition.is_const_true() => {
                    for v in values {
                        s.values.entry(v).or_insert(0);
                    }
                }
                _ => s.any = true,
            }
        }
        for line in text.lines() {
            let Some(c) = line.strip_prefix("# ") else { continue };
            if let Some(runs) = c.strip_prefix("runs: ").and_then(|r| r.trim().parse().ok()) {
                t.runs = runs;
                continue;
            }
            let Some((name, rest)) = c.split_once(": ") else { continue };
            let Some(s) = t.calls.get_mut(name) else { continue };
            let (count, detail) = rest.split_once(" calls").unwrap_or((rest, ""));
            s.count = count.trim().parse().unwrap_or(0);
            let detail = detail.trim().trim_start_matches('(').trim_end_matches(')');
            for item in detail.split(", ").filter(|i| !i.is_empty()) {
                let Some((sym, n)) = item.rsplit_once(' ') else { continue };
                let value = consts::constant(sym).or_else(|| parse_number(sym));
                if let (Some(v), Ok(n)) = (value, n.parse::<u64>()) {
                    if let Some(slot) = s.values.get_mut(&v) {
                        *slot = n;
                    }
                }
            }
        }
        Ok(t)
    }
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The values of `argI == V || argI == W ...`; None for any other shape.
fn equal_values(e: &Expr, index: u8) -> Option<Vec<u64>> {
    match e {
        Expr::Or(l, r) => {
            let mut v = equal_values(l, index)?;
            v.extend(equal_values(r, index)?);
            Some(v)
        }
        Expr::Compare(CmpOp::Eq, l, r) => match (l.as_ref(), r.as_ref()) {
            (Expr::Arg(a), Expr::Num(n)) | (Expr::Num(n), Expr::Arg(a))
                if a.index == index && a.part == ArgPart::Full =>
            {
                Some(vec![*n])
            }
            _ => None,
        },
        Expr::In { negated: false, value, set } => match value.as_ref() {
            Expr::Arg(a) if a.index == index && a.part == ArgPart::Full => set
                .iter()
                .map(|x| match x {
                    Expr::Num(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::eval::decide;

    fn run() -> Training {
        let mut t = Training { runs: 1, ..Training::default() };
        for _ in 0..3 {
            t.record("read", &[0; 6]);
        }
        t.record("socket", &[1, 1, 0, 0, 0, 0]);
        t.record("socket", &[2, 2, 0, 0, 0, 0]);
        t.record("socket", &[1, 5, 0, 0, 0, 0]);
        t.record("ioctl", &[1, 0x5401, 0, 0, 0, 0]);
        t
    }

    #[test]
    fn the_policy_parses_and_allows_exactly_what_was_seen() {
        let text = run().to_policy();
        let p = parse_policy(&text, Path::new("t.seccomp")).unwrap();
        assert!(
            text.contains("# socket: 3 calls (AF_UNIX 2, AF_INET 1)\nsocket: arg0 == AF_UNIX || arg0 == AF_INET\n"),
            "{text}"
        );
        assert!(!decide(&p, true, "read", &[9; 6]).denies());
        assert!(!decide(&p, true, "socket", &[2, 1, 0, 0, 0, 0]).denies());
        assert!(decide(&p, true, "socket", &[16, 3, 0, 0, 0, 0]).denies());
        assert!(!decide(&p, true, "ioctl", &[4, 0x5401, 0, 0, 0, 0]).denies());
        assert!(decide(&p, true, "ioctl", &[4, 0x5412, 0, 0, 0, 0]).denies());
        assert!(decide(&p, true, "write", &[0; 6]).denies());
    }

    #[test]
    fn a_file_reads_back_and_merges_with_a_new_run() {
        let first = run();
        let back = Training::from_policy(&first.to_policy(), Path::new("t")).unwrap();
        assert_eq!(back, first);
        let mut second = Training { runs: 1, ..Training::default() };
        second.record("socket", &[10, 1, 0, 0, 0, 0]);
        second.record("write", &[1, 0, 0, 0, 0, 0]);
        let mut merged = back;
        merged.merge(&second);
        assert_eq!(merged.runs, 2);
        assert_eq!(merged.calls["socket"].count, 4);
        let p = parse_policy(&merged.to_policy(), Path::new("m")).unwrap();
        assert!(!decide(&p, true, "socket", &[10, 1, 0, 0, 0, 0]).denies());
        assert!(!decide(&p, true, "socket", &[1, 1, 0, 0, 0, 0]).denies());
        assert!(!decide(&p, true, "write", &[0; 6]).denies());
    }

    #[test]
    fn too_many_values_allow_any_and_broken_files_are_refused() {
        let mut t = Training::default();
        for v in 0..=MAX_VALUES as u64 {
            t.record("ioctl", &[0, v, 0, 0, 0, 0]);
        }
        assert!(t.calls["ioctl"].any);
        assert!(t.to_policy().contains("\nioctl: 1\n"));
        let e = Training::from_policy("read: 1\nbogus_call: 1\n", Path::new("bad")).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
