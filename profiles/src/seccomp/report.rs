//! What oz records about calls a policy denies (or would deny, in audit mode), as the agent
//! writes them to the sandbox log and `oz why` reads them back.
//!
//! Each distinct denial is logged once, when first seen, as `seccomp-denial {json}`; its count
//! is logged with the others as `seccomp-counts {json}` whenever counts changed (at most once
//! a second) and when the program exits. A path the program failed to open that exists on the
//! host but not in the sandbox is logged as `seccomp-hint {json}`.

use serde::{Deserialize, Serialize};

use super::decode;
use super::ir::{Expr, Policy, Rule};

pub const DENIAL_PREFIX: &str = "seccomp-denial ";
pub const COUNTS_PREFIX: &str = "seccomp-counts ";
pub const HINT_PREFIX: &str = "seccomp-hint ";

/// Whether a log message is one of these reports (a denial, the counts or a hint).
pub fn is_report(message: &str) -> bool {
    [DENIAL_PREFIX, COUNTS_PREFIX, HINT_PREFIX].iter().any(|p| message.starts_with(p))
}

/// The rule that decided, by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub file: String,
    pub line: u32,
    /// The rule as written after expansion, e.g. `socket: (arg0 == 16)`.
    pub text: String,
}

/// One distinct denied call (same syscall, decoded arguments, path, process and rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// 1-based, in order of first occurrence within the sandbox.
    pub id: u32,
    pub syscall: String,
    /// The decoded arguments ([`decode::describe`]).
    pub args: String,
    /// The path argument, when the call has one and it could be read.
    pub path: Option<String>,
    /// The calling process's name and host pid (first occurrence).
    pub process: String,
    pub pid: i32,
    /// What happened: an errno name (enforcing), or `allowed (audit)`.
    pub outcome: String,
    /// The rule that denies it; None when no rule names the syscall (a whitelist's default).
    pub rule: Option<RuleRef>,
    /// The policy file (for a default denial without a rule).
    pub policy: String,
    /// A policy line that would allow the call.
    pub suggestion: String,
}

/// Every count so far, by denial id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub counts: Vec<(u32, u64)>,
    /// Distinct denials dropped because the record cap was reached (their calls still count).
    pub dropped: u64,
}

/// A path the program could not open inside the sandbox that exists on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub syscall: String,
    pub path: String,
    pub process: String,
    /// The profile whitelist item that would make it visible.
    pub suggestion: String,
}

/// A log message for a record.
pub fn message<T: Serialize>(prefix: &str, record: &T) -> String {
    format!("{prefix}{}", serde_json::to_string(record).unwrap_or_default())
}

/// The record a log message carries, when it has `prefix`.
pub fn parse<T: for<'de> Deserialize<'de>>(prefix: &str, message: &str) -> Option<T> {
    serde_json::from_str(message.strip_prefix(prefix)?).ok()
}

/// The rule's position and text.
pub fn rule_ref(policy: &Policy, rule: &Rule) -> RuleRef {
    RuleRef {
        file: rule.file(policy).display().to_string(),
        line: rule.span.line,
        text: format!("{}: {}", rule.syscall, rule.condition),
    }
}

/// A whitelist line allowing this call: the constrained argument's value when the call has
/// one ([`decode::constrained_arg`]), else the whole syscall.
pub fn allow_line(syscall: &str, args: &[u64; 6]) -> String {
    match decode::constrained_arg(syscall) {
        Some(i) => format!("{syscall}: arg{i} == {}", decode::value_expr(syscall, args[usize::from(i)])),
        None => format!("{syscall}: 1"),
    }
}

/// A policy line that would let this call through: in a whitelist, a line to add; in a
/// blacklist, the denying rule narrowed to exclude the call's value, or commented out.
pub fn suggestion(whitelist: bool, syscall: &str, args: &[u64; 6], rule: Option<&Rule>) -> String {
    if whitelist {
        return allow_line(syscall, args);
    }
    let Some(rule) = rule else {
        return format!("# {syscall} is denied by the policy's default action");
    };
    match decode::constrained_arg(syscall) {
        Some(i) if !rule.condition.is_const_true() => {
            let v = decode::value_expr(syscall, args[usize::from(i)]);
            format!("{syscall}: {} && arg{i} != {v}", paren(&rule.condition))
        }
        _ => format!("# {syscall}: {}", rule.condition),
    }
}

fn paren(e: &Expr) -> String {
    let s = e.to_string();
    if s.starts_with('(') {
        s
    } else {
        format!("({s})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::parse_policy;
    use std::path::Path;

    #[test]
    fn suggestions_parse_and_allow_the_call() {
        use crate::seccomp::eval::decide;
        let bl = parse_policy("ptrace: 1\nsocket: arg0 == AF_NETLINK || arg0 == AF_PACKET\n", Path::new("b")).unwrap();
        let args = [16, 3, 0, 0, 0, 0];
        let v = decide(&bl, false, "socket", &args);
        let line = suggestion(false, "socket", &args, v.rule);
        let fixed = parse_policy(&format!("ptrace: 1\n{line}\n"), Path::new("b2")).unwrap();
        assert!(!decide(&fixed, false, "socket", &args).denies(), "{line}");
        assert!(decide(&fixed, false, "socket", &[17, 3, 0, 0, 0, 0]).denies(), "{line}");
        let v = decide(&bl, false, "ptrace", &[0; 6]);
        assert_eq!(suggestion(false, "ptrace", &[0; 6], v.rule), "# ptrace: 1");
        let wl = parse_policy("read: 1\n", Path::new("w")).unwrap();
        let line = suggestion(true, "ioctl", &[1, 0x5401, 0, 0, 0, 0], None);
        assert_eq!(line, "ioctl: arg1 == TCGETS");
        let fixed = parse_policy(&format!("read: 1\n{line}\n"), Path::new("w2")).unwrap();
        assert!(!decide(&fixed, true, "ioctl", &[1, 0x5401, 0, 0, 0, 0]).denies());
        assert!(decide(&wl, true, "ioctl", &[1, 0x5401, 0, 0, 0, 0]).denies());
    }

    #[test]
    fn rules_of_extra_files_name_their_own_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("extra.seccomp"), "# extra\nkeyctl: 1\n").unwrap();
        std::fs::write(dir.join("main.seccomp"), "ptrace: 1\n").unwrap();
        let extra = dir.join("extra.seccomp").display().to_string();
        let p = crate::seccomp::load_policy_file(dir.join("main.seccomp"), std::slice::from_ref(&extra)).unwrap();
        let r: Vec<RuleRef> = p.rules.iter().map(|r| rule_ref(&p, r)).collect();
        assert_eq!((r[0].file.as_str(), r[0].line), (extra.as_str(), 2));
        assert_eq!((r[1].file.clone(), r[1].line), (dir.join("main.seccomp").display().to_string(), 1));
    }

    #[test]
    fn records_round_trip_through_log_messages() {
        let c = Counts { total: 5, counts: vec![(1, 2), (2, 3)], dropped: 0 };
        let m = message(COUNTS_PREFIX, &c);
        assert_eq!(parse::<Counts>(COUNTS_PREFIX, &m).as_ref(), Some(&c));
        assert_eq!(parse::<Counts>(DENIAL_PREFIX, &m), None);
        assert!(is_report(&m));
        assert!(is_report(&message(HINT_PREFIX, &c)) && is_report(&message(DENIAL_PREFIX, &c)));
        assert!(!is_report("program exited: seccomp-counts {}"), "a prefix only counts at the start");
    }
}
