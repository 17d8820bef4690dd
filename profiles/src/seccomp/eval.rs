//! Evaluating a policy for one concrete call: which action the filter takes and which rule
//! decided it. The compiled filter cannot say which rule matched, so whoever receives a
//! notification asks the IR the same question with the call's arguments.
//!
//! The semantics are the compiler's (`oz_sandbox::seccomp::compile`): rules for one syscall are
//! or-ed; the positive action applies when any condition holds, the negative one otherwise; a
//! syscall no rule names gets the default (`DEFAULT_POLICY`, else allow in blacklist mode and
//! EPERM in whitelist mode).

use super::ir::{Action, ArgPart, BinOp, CmpOp, Expr, Policy, Rule, UnaryOp};

/// What the filter does with the call denied by a policy without its own action.
pub const DENY: Action = Action::Errno(libc::EPERM as u16);

/// The decision for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict<'a> {
    pub action: Action,
    /// The rule that decided: the first whose condition holds (positive action), else the
    /// first rule for the syscall (negative action); None when no rule names the syscall.
    pub rule: Option<&'a Rule>,
}

impl Verdict<'_> {
    /// True when the call would not simply run (errno, kill or trap).
    pub fn denies(&self) -> bool {
        matches!(self.action, Action::Errno(_) | Action::Kill | Action::Trap)
    }
}

/// The verdict of `policy` (a whitelist when `whitelist`, else a blacklist) for `syscall` with
/// `args`.
pub fn decide<'a>(policy: &'a Policy, whitelist: bool, syscall: &str, args: &[u64; 6]) -> Verdict<'a> {
    let d = policy.defaults;
    let (default, positive, negative) =
        if whitelist { (DENY, Action::Allow, DENY) } else { (Action::Allow, DENY, Action::Allow) };
    let mut first = None;
    for rule in policy.rules.iter().filter(|r| r.syscall == syscall) {
        first.get_or_insert(rule);
        if truth(&rule.condition, args) {
            let action = rule.action.positive.or(d.positive).unwrap_or(positive);
            return Verdict { action, rule: Some(rule) };
        }
    }
    match first {
        Some(rule) => Verdict { action: rule.action.negative.or(d.negative).unwrap_or(negative), rule: Some(rule) },
        None => Verdict { action: d.policy.unwrap_or(default), rule: None },
    }
}

/// A condition's truth for concrete arguments (numbers are true when non-zero).
pub fn truth(expr: &Expr, args: &[u64; 6]) -> bool {
    value(expr, args) != 0
}

/// An expression's value: booleans are 0 or 1, arithmetic wraps (division by zero gives 0;
/// the parser already rejects it in constants).
pub fn value(expr: &Expr, args: &[u64; 6]) -> u64 {
    match expr {
        Expr::Bool(b) => u64::from(*b),
        Expr::Num(n) => *n,
        Expr::Arg(a) => {
            let v = args.get(usize::from(a.index)).copied().unwrap_or(0);
            match a.part {
                ArgPart::Full => v,
                ArgPart::High => v >> 32,
                ArgPart::Low => v & 0xffff_ffff,
            }
        }
        Expr::Unary(UnaryOp::Not, e) => u64::from(!truth(e, args)),
        Expr::Unary(UnaryOp::BitNot, e) => !value(e, args),
        Expr::Binary(op, l, r) => binary(*op, value(l, args), value(r, args)),
        Expr::Compare(op, l, r) => u64::from(compare(*op, value(l, args), value(r, args))),
        Expr::BitTest(l, r) => u64::from(value(l, args) & value(r, args) != 0),
        Expr::And(l, r) => u64::from(truth(l, args) && truth(r, args)),
        Expr::Or(l, r) => u64::from(truth(l, args) || truth(r, args)),
        Expr::In { negated, value: v, set } => {
            let v = value(v, args);
            u64::from(set.iter().any(|e| value(e, args) == v) != *negated)
        }
    }
}

fn compare(op: CmpOp, a: u64, b: u64) -> bool {
    op.eval(a, b)
}

fn binary(op: BinOp, a: u64, b: u64) -> u64 {
    match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::Div => a.checked_div(b).unwrap_or(0),
        BinOp::Mod => a.checked_rem(b).unwrap_or(0),
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Shl => a.checked_shl(b as u32).unwrap_or(0),
        BinOp::Shr => a.checked_shr(b as u32).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::parse_policy;
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        parse_policy(text, Path::new("p.seccomp")).unwrap()
    }

    #[test]
    fn blacklist_names_the_rule_that_denies() {
        let p = policy("# c\nptrace: 1\nsocket: arg0 == AF_NETLINK || arg0 == AF_PACKET\nkeyctl: return EACCES\n");
        let v = decide(&p, false, "ptrace", &[0; 6]);
        assert_eq!((v.action, v.rule.map(|r| r.span.line)), (DENY, Some(2)));
        let v = decide(&p, false, "socket", &[16, 2, 0, 0, 0, 0]);
        assert_eq!((v.action, v.rule.map(|r| r.span.line)), (DENY, Some(3)));
        let v = decide(&p, false, "socket", &[1, 1, 0, 0, 0, 0]);
        assert_eq!(v.action, Action::Allow);
        assert!(!v.denies());
        assert_eq!(decide(&p, false, "keyctl", &[0; 6]).action, Action::Errno(libc::EACCES as u16));
        assert_eq!(decide(&p, false, "read", &[0; 6]).rule, None);
    }

    #[test]
    fn whitelist_denies_unlisted_calls_and_failed_conditions() {
        let p = policy("read: 1\nsocket: arg0 == AF_UNIX\nioctl: arg1 == TCGETS; return ENOTTY\n");
        assert_eq!(decide(&p, true, "read", &[0; 6]).action, Action::Allow);
        let v = decide(&p, true, "write", &[0; 6]);
        assert_eq!((v.action, v.rule), (DENY, None));
        let v = decide(&p, true, "socket", &[2, 1, 0, 0, 0, 0]);
        assert_eq!((v.action, v.rule.map(|r| r.span.line)), (DENY, Some(2)));
        let v = decide(&p, true, "ioctl", &[1, 0x5413, 0, 0, 0, 0]);
        assert_eq!((v.action, v.rule.map(|r| r.span.line)), (Action::Errno(libc::ENOTTY as u16), Some(3)));
    }

    #[test]
    fn values_follow_the_language() {
        let p = policy("clone: arg0 & CLONE_NEWUSER\nmmap: argH1 == 1 && in(argL1, 4, 5) && !(arg2 &? 4)\n");
        assert!(truth(&p.rules[0].condition, &[0x1000_0000, 0, 0, 0, 0, 0]));
        assert!(!truth(&p.rules[0].condition, &[0x11, 0, 0, 0, 0, 0]));
        assert!(truth(&p.rules[1].condition, &[0, (1 << 32) | 5, 3, 0, 0, 0]));
        assert!(!truth(&p.rules[1].condition, &[0, (1 << 32) | 5, 7, 0, 0, 0]));
    }
}
