//! `oz why ID`: the seccomp denials of a running or recently ended sandbox, grouped by the rule
//! that denied them, each with a policy line that would allow it, and the paths the program
//! missed that exist on the host. Read from the sandbox's log records (the daemon shows them to
//! the sandbox's owner and root only), where the agent writes them
//! (`oz_profiles::seccomp::report`). `oz run` prints a one-line summary from the same records.

use crate::oz::conn::{unexpected, Conn};
use anyhow::{bail, Result};
use oz_profiles::seccomp::report::{self, Counts, Denial, Hint};
use oz_wire::{ClientRequest, DaemonReply, LogRecord};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the sandbox's log says about seccomp.
#[derive(Debug, Default)]
pub struct Findings {
    pub denials: Vec<Denial>,
    pub counts: Counts,
    pub hints: Vec<Hint>,
}

impl Findings {
    pub fn from_records(records: &[LogRecord]) -> Findings {
        let mut f = Findings::default();
        for r in records {
            if let Some(d) = report::parse::<Denial>(report::DENIAL_PREFIX, &r.message) {
                if !f.denials.iter().any(|x| x.id == d.id) {
                    f.denials.push(d);
                }
            } else if let Some(c) = report::parse::<Counts>(report::COUNTS_PREFIX, &r.message) {
                f.counts = c;
            } else if let Some(h) = report::parse::<Hint>(report::HINT_PREFIX, &r.message) {
                f.hints.push(h);
            }
        }
        f
    }

    fn count(&self, id: u32) -> u64 {
        self.counts.counts.iter().find(|(i, _)| *i == id).map_or(1, |(_, n)| *n)
    }

    /// Calls denied in all (at least one per recorded denial).
    pub fn total(&self) -> u64 {
        self.counts.total.max(self.denials.len() as u64)
    }

    /// True when the denials were only audited (the calls ran).
    pub fn audit_only(&self) -> bool {
        !self.denials.is_empty() && self.denials.iter().all(|d| d.outcome == "allowed (audit)")
    }
}

/// The one-line summary `oz run` prints at exit, when anything was denied.
pub fn summary_line(f: &Findings, id: u64) -> Option<String> {
    let n = f.total();
    if n == 0 {
        let h = f.hints.len();
        return (h > 0).then(|| {
            let what = if h == 1 { "path missing in the sandbox exists" } else { "paths missing in the sandbox exist" };
            format!("{h} {what} on the host; oz why {id}")
        });
    }
    let calls = if n == 1 { "call" } else { "calls" };
    let what = if f.audit_only() { "would be denied (audit)" } else { "denied" };
    Some(format!("{n} {calls} {what}; oz why {id}"))
}

/// The report `oz why` prints.
pub fn render(f: &Findings, id: u64) -> String {
    let mut out = String::new();
    if f.denials.is_empty() && f.hints.is_empty() {
        let _ = writeln!(out, "sandbox {id}: no seccomp denial recorded");
        return out;
    }
    let _ = writeln!(out, "sandbox {id}: {} seccomp denial(s), {} distinct", f.total(), f.denials.len());
    let mut groups: BTreeMap<(String, u32), Vec<&Denial>> = BTreeMap::new();
    for d in &f.denials {
        let key = match &d.rule {
            Some(r) => (r.file.clone(), r.line),
            None => (d.policy.clone(), 0),
        };
        groups.entry(key).or_default().push(d);
    }
    for ((file, line), ds) in groups {
        match ds[0].rule.as_ref() {
            Some(r) => {
                let _ = writeln!(out, "\n{file}:{line}: {}", r.text);
            }
            None => {
                let _ = writeln!(out, "\n{file}: no rule names {} (the policy's default)", ds[0].syscall);
            }
        }
        for d in ds {
            let path = d.path.as_deref().map(|p| format!(" path={p:?}")).unwrap_or_default();
            let n = f.count(d.id);
            let times = if n == 1 { "time" } else { "times" };
            let _ = writeln!(
                out,
                "  #{} {}({}){path} by {}[{}]: {}, {n} {times}",
                d.id, d.syscall, d.args, d.process, d.pid, d.outcome
            );
            let _ = writeln!(out, "     to allow: {}", d.suggestion);
        }
    }
    if f.counts.dropped > 0 {
        let _ =
            writeln!(out, "\n(and {} more distinct calls not recorded: the record cap was reached)", f.counts.dropped);
    }
    for h in &f.hints {
        let _ = writeln!(
            out,
            "\n{} ({} by {}) does not exist in the sandbox but does on the host; to make it visible add {}",
            h.path, h.syscall, h.process, h.suggestion
        );
    }
    out
}

/// The sandbox's buffered log records.
pub fn records(conn: &mut Conn, id: u64) -> Result<Vec<LogRecord>> {
    conn.send(&ClientRequest::Logs { sandbox: Some(id), follow: false, count: None }, &[])?;
    let mut out = Vec::new();
    loop {
        match conn.recv()? {
            DaemonReply::LogLine(r) => out.push(r),
            DaemonReply::LogEnd => return Ok(out),
            DaemonReply::Error(e) => bail!("sandbox {id}: {e}"),
            other => return Err(unexpected("LogLine or LogEnd", &other)),
        }
    }
}

pub fn why(id: u64, json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let f = Findings::from_records(&records(&mut conn, id)?);
    if json {
        let denials: Vec<serde_json::Value> = f
            .denials
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["count"] = f.count(d.id).into();
                v
            })
            .collect();
        let doc = serde_json::json!({ "sandbox": id, "total": f.total(), "denials": denials, "hints": f.hints });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&f, id));
    }
    Ok(0)
}

/// The summary line for `oz run`, from the seccomp reports the daemon sent ahead of
/// `ProgramExited`.
pub fn run_summary(records: &[LogRecord], id: u64) -> Option<String> {
    summary_line(&Findings::from_records(records), id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_profiles::seccomp::report::RuleRef;
    use oz_wire::LogLevel;

    fn rec(message: String) -> LogRecord {
        LogRecord { ts: 0, level: LogLevel::Warning, sandbox: Some(7), profile: None, message }
    }

    fn denial(id: u32, syscall: &str, line: Option<u32>, outcome: &str) -> Denial {
        Denial {
            id,
            syscall: syscall.into(),
            args: "arg0=0x0".into(),
            path: None,
            process: "probe".into(),
            pid: 42,
            outcome: outcome.into(),
            rule: line.map(|line| RuleRef { file: "/p.seccomp".into(), line, text: format!("{syscall}: 1") }),
            policy: "/p.seccomp".into(),
            suggestion: format!("# {syscall}: 1"),
        }
    }

    #[test]
    fn groups_by_rule_with_counts_and_summarises() {
        let recs = vec![
            rec(report::message(report::DENIAL_PREFIX, &denial(1, "sysinfo", Some(2), "EPERM"))),
            rec("program output".into()),
            rec(report::message(report::DENIAL_PREFIX, &denial(2, "uname", Some(4), "EPERM"))),
            rec(report::message(report::DENIAL_PREFIX, &denial(3, "ptrace", None, "EPERM"))),
            rec(report::message(
                report::COUNTS_PREFIX,
                &Counts { total: 5, counts: vec![(1, 3), (2, 1), (3, 1)], dropped: 0 },
            )),
        ];
        let f = Findings::from_records(&recs);
        assert_eq!(summary_line(&f, 7).as_deref(), Some("5 calls denied; oz why 7"));
        let text = render(&f, 7);
        assert!(
            text.contains("/p.seccomp:2: sysinfo: 1\n  #1 sysinfo(arg0=0x0) by probe[42]: EPERM, 3 times"),
            "{text}"
        );
        assert!(text.contains("/p.seccomp: no rule names ptrace"), "{text}");
        assert!(text.find("/p.seccomp:2").unwrap() < text.find("/p.seccomp:4").unwrap(), "{text}");
        let audit = Findings::from_records(&[rec(report::message(
            report::DENIAL_PREFIX,
            &denial(1, "uname", Some(4), "allowed (audit)"),
        ))]);
        assert_eq!(summary_line(&audit, 3).as_deref(), Some("1 call would be denied (audit); oz why 3"));
        assert_eq!(summary_line(&Findings::default(), 3), None);
    }
}
