//! Policies written for an older libc, read for a newer one: a rule naming a legacy call also
//! covers the newer call that a current glibc makes in its place, with the same meaning. In a
//! whitelist the program keeps what it was allowed; in a blacklist the legacy call's denial is not
//! bypassed by glibc's newer call (a blacklist denying `open` also denies `openat(AT_FDCWD, ...)`,
//! which is what `open()` is today).
//!
//! A whitelist lists the system calls a program made when it was written. glibc has since moved
//! several of its functions onto newer calls that do the same thing (`readdir` on `getdents64`,
//! `stat` on `newfstatat`, `getrlimit` on `prlimit64`, timed waits on `FUTEX_WAIT_BITSET`), so a
//! whitelist from 2017 denies a program what it always allowed it. [`modernize`] adds, for each
//! rule naming such a legacy call, a rule for its replacement that allows exactly the calls glibc
//! makes in the legacy call's place:
//!
//! - Only true equivalents (table [`EQUIVALENTS`]): the replacement's extra arguments are pinned to
//!   the values that make it the legacy call (`dirfd == AT_FDCWD`, `pid == 0`, the `flags` the
//!   legacy call implies), and the legacy rule's conditions follow their arguments to the
//!   replacement's positions. A condition on an argument the replacement has no counterpart for
//!   derives nothing.
//! - `futex`: a rule that allows `FUTEX_WAIT` with some flags also allows `FUTEX_WAIT_BITSET` with
//!   the same flags, with or without `FUTEX_CLOCK_REALTIME` (see [`futex_rules`]).
//! - A policy that names the replacement itself (or, for futex, mentions `FUTEX_WAIT_BITSET`)
//!   decided about it: nothing is derived.
//! - Only rules with the mode's own actions derive: a rule with actions of its own (`[+log]`,
//!   `return ENOSYS`) says something about the legacy call alone.
//!
//! Calls that glibc only probes, and replaces with an older one when they fail with ENOSYS
//! (`clone3`, `statx`, `rseq`...), are not derived here: the compiler fails them with ENOSYS
//! (`LIBC_FALLBACKS` of `oz_sandbox::seccomp::compile`). Anything else a newer libc calls that no
//! legacy call means (`gettid`, `sched_getattr`) stays denied: allowing it would widen the policy.
//!
//! Pure, and idempotent: the derived rules name the replacements, so a second pass adds nothing.

use super::eval;
use super::ir::{ArgPart, ArgRef, CmpOp, Expr, Policy, Rule, RuleAction};

/// A legacy call and the newer call glibc makes in its place.
#[derive(Debug, Clone, Copy)]
pub struct Equivalent {
    pub legacy: &'static str,
    pub modern: &'static str,
    /// Legacy argument index to the replacement's.
    pub args: &'static [(u8, u8)],
    /// The replacement's other arguments, fixed to what make it the legacy call.
    pub fixed: &'static [(u8, ArgPart, u64)],
    /// Why the two are the same call.
    pub why: &'static str,
}

/// `AT_FDCWD` (-100) as the low 32 bits of the register: the kernel reads `dirfd` as an int.
const AT_FDCWD_LOW: u64 = (libc::AT_FDCWD as u32) as u64;

/// The pairs [`modernize`] maps, each checked against the kernel's and glibc 2.36's sources.
pub const EQUIVALENTS: &[Equivalent] = &[
    Equivalent {
        legacy: "getdents",
        modern: "getdents64",
        args: &[(0, 0), (1, 1), (2, 2)],
        fixed: &[],
        why: "the same directory read with 64-bit inode numbers; glibc's readdir uses it",
    },
    Equivalent {
        legacy: "stat",
        modern: "newfstatat",
        args: &[(0, 1), (1, 2)],
        fixed: &[(0, ArgPart::Low, AT_FDCWD_LOW), (3, ArgPart::Full, 0)],
        why: "glibc 2.33+ stat(p) is fstatat(AT_FDCWD, p, buf, 0)",
    },
    Equivalent {
        legacy: "lstat",
        modern: "newfstatat",
        args: &[(0, 1), (1, 2)],
        fixed: &[(0, ArgPart::Low, AT_FDCWD_LOW), (3, ArgPart::Full, libc::AT_SYMLINK_NOFOLLOW as u64)],
        why: "glibc 2.33+ lstat(p) is fstatat(AT_FDCWD, p, buf, AT_SYMLINK_NOFOLLOW)",
    },
    Equivalent {
        legacy: "fstat",
        modern: "newfstatat",
        args: &[(0, 0), (1, 2)],
        fixed: &[(3, ArgPart::Full, libc::AT_EMPTY_PATH as u64)],
        why: "glibc 2.33+ fstat(fd) is fstatat(fd, \"\", buf, AT_EMPTY_PATH)",
    },
    Equivalent {
        legacy: "open",
        modern: "openat",
        args: &[(0, 1), (1, 2), (2, 3)],
        fixed: &[(0, ArgPart::Low, AT_FDCWD_LOW)],
        why: "glibc 2.26+ open(p, flags, mode) is openat(AT_FDCWD, p, flags, mode)",
    },
    Equivalent {
        legacy: "getrlimit",
        modern: "prlimit64",
        args: &[(0, 1), (1, 3)],
        fixed: &[(0, ArgPart::Full, 0), (2, ArgPart::Full, 0)],
        why: "glibc 2.26+ getrlimit(r, old) is prlimit64(0, r, NULL, old), with no fallback",
    },
    Equivalent {
        legacy: "setrlimit",
        modern: "prlimit64",
        args: &[(0, 1), (1, 2)],
        fixed: &[(0, ArgPart::Full, 0), (3, ArgPart::Full, 0)],
        why: "glibc 2.26+ setrlimit(r, new) is prlimit64(0, r, new, NULL), with no fallback",
    },
];

const FUTEX_CMD: u64 = 0x7f;
const FUTEX_WAIT: u64 = 0;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// A rule [`modernize`] added, to log: the legacy rule it came from and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub legacy: String,
    pub modern: String,
    /// The rule added (its span and origin are the legacy rule's).
    pub rule: Rule,
    pub why: &'static str,
}

impl std::fmt::Display for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} also covers {}: {} ({})",
            self.rule.span.line, self.legacy, self.modern, self.rule.condition, self.why
        )
    }
}

/// `policy` with the rules its legacy calls imply for their replacements (module docs), and
/// those rules.
pub fn modernize(policy: &Policy) -> (Policy, Vec<Derived>) {
    let names = |name: &str| policy.rules.iter().any(|r| r.syscall == name);
    let mut derived = Vec::new();
    for eq in EQUIVALENTS {
        if names(eq.modern) {
            continue;
        }
        for rule in policy.rules.iter().filter(|r| r.syscall == eq.legacy && r.action == RuleAction::default()) {
            let Some(cond) = remap(&rule.condition, eq.args) else { continue };
            let fixed = eq.fixed.iter().map(|&(index, part, value)| {
                Expr::Compare(CmpOp::Eq, Box::new(Expr::Arg(ArgRef { index, part })), Box::new(Expr::Num(value)))
            });
            let condition = fixed.rev().fold(cond, |c, test| and(test, c));
            let rule = Rule { syscall: eq.modern.to_string(), condition, ..rule.clone() };
            derived.push(Derived { legacy: eq.legacy.into(), modern: eq.modern.into(), rule, why: eq.why });
        }
    }
    derived.extend(futex_rules(policy));
    let mut out = policy.clone();
    out.rules.extend(derived.iter().map(|d| d.rule.clone()));
    (out, derived)
}

/// glibc 2.34+ waits on a futex with `FUTEX_WAIT_BITSET` (and `FUTEX_BITSET_MATCH_ANY`), adding
/// `FUTEX_CLOCK_REALTIME` when the timeout is on that clock; older glibc used `FUTEX_WAIT` with a
/// relative timeout. The kernel implements `FUTEX_WAIT` as a wait on the bitset that matches
/// every waker, and the clock flag only says how to read the timeout, so `FUTEX_WAIT_BITSET | f`
/// (with or without the clock flag) is allowed exactly when the policy allows `FUTEX_WAIT | f`
/// with the same other arguments, for each `f` of none and `FUTEX_PRIVATE_FLAG`.
fn futex_rules(policy: &Policy) -> Vec<Derived> {
    let rules: Vec<&Rule> = policy.rules.iter().filter(|r| r.syscall == "futex").collect();
    let plain = rules.iter().all(|r| r.action == RuleAction::default());
    let decided = rules.iter().any(|r| r.condition.is_const_true() || mentions_cmd(&r.condition, FUTEX_WAIT_BITSET));
    let (Some(first), true, false) = (rules.first(), plain, decided) else { return Vec::new() };
    let mut out = Vec::new();
    for flags in [0, FUTEX_PRIVATE_FLAG] {
        let wait = rules.iter().map(|r| substitute(&r.condition, 1, FUTEX_WAIT | flags)).reduce(or).map(|w| fold(&w));
        let Some(wait) = wait.filter(|w| !matches!(w, Expr::Bool(false) | Expr::Num(0))) else { continue };
        for clock in [0, FUTEX_CLOCK_REALTIME] {
            let op = FUTEX_WAIT_BITSET | flags | clock;
            let arg1 = Expr::Arg(ArgRef { index: 1, part: ArgPart::Full });
            let condition = and(Expr::Compare(CmpOp::Eq, Box::new(arg1), Box::new(Expr::Num(op))), wait.clone());
            let rule = Rule { condition, ..(*first).clone() };
            let why = "glibc 2.34+ waits with FUTEX_WAIT_BITSET, the kernel's FUTEX_WAIT on any bit, its clock flagged";
            out.push(Derived {
                legacy: format!("futex op {}", FUTEX_WAIT | flags),
                modern: format!("futex op {op}"),
                rule,
                why,
            });
        }
    }
    out
}

fn and(a: Expr, b: Expr) -> Expr {
    if b.is_const_true() {
        return a;
    }
    Expr::And(Box::new(a), Box::new(b))
}

fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(Box::new(a), Box::new(b))
}

/// True when `e` compares a constant whose futex command bits are `cmd` (a policy naming it).
fn mentions_cmd(e: &Expr, cmd: u64) -> bool {
    match e {
        Expr::Num(n) => n & FUTEX_CMD == cmd && *n < 0x1000,
        Expr::Bool(_) | Expr::Arg(_) => false,
        Expr::Unary(_, x) => mentions_cmd(x, cmd),
        Expr::Binary(_, l, r) | Expr::Compare(_, l, r) | Expr::BitTest(l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
            mentions_cmd(l, cmd) || mentions_cmd(r, cmd)
        }
        Expr::In { value, set, .. } => mentions_cmd(value, cmd) || set.iter().any(|s| mentions_cmd(s, cmd)),
    }
}

/// `e` with each argument renumbered by `map`; None when it reads an argument `map` lacks.
fn remap(e: &Expr, map: &[(u8, u8)]) -> Option<Expr> {
    let bx = |x: &Expr| remap(x, map).map(Box::new);
    Some(match e {
        Expr::Bool(_) | Expr::Num(_) => e.clone(),
        Expr::Arg(a) => {
            let index = map.iter().find(|(from, _)| *from == a.index)?.1;
            Expr::Arg(ArgRef { index, part: a.part })
        }
        Expr::Unary(op, x) => Expr::Unary(*op, bx(x)?),
        Expr::Binary(op, l, r) => Expr::Binary(*op, bx(l)?, bx(r)?),
        Expr::Compare(op, l, r) => Expr::Compare(*op, bx(l)?, bx(r)?),
        Expr::BitTest(l, r) => Expr::BitTest(bx(l)?, bx(r)?),
        Expr::And(l, r) => Expr::And(bx(l)?, bx(r)?),
        Expr::Or(l, r) => Expr::Or(bx(l)?, bx(r)?),
        Expr::In { negated, value, set } => Expr::In {
            negated: *negated,
            value: bx(value)?,
            set: set.iter().map(|s| remap(s, map)).collect::<Option<_>>()?,
        },
    })
}

/// `e` with argument `index` replaced by the constant `v`.
fn substitute(e: &Expr, index: u8, v: u64) -> Expr {
    let bx = |x: &Expr| Box::new(substitute(x, index, v));
    match e {
        Expr::Arg(a) if a.index == index => Expr::Num(match a.part {
            ArgPart::Full => v,
            ArgPart::High => v >> 32,
            ArgPart::Low => v & 0xffff_ffff,
        }),
        Expr::Bool(_) | Expr::Num(_) | Expr::Arg(_) => e.clone(),
        Expr::Unary(op, x) => Expr::Unary(*op, bx(x)),
        Expr::Binary(op, l, r) => Expr::Binary(*op, bx(l), bx(r)),
        Expr::Compare(op, l, r) => Expr::Compare(*op, bx(l), bx(r)),
        Expr::BitTest(l, r) => Expr::BitTest(bx(l), bx(r)),
        Expr::And(l, r) => Expr::And(bx(l), bx(r)),
        Expr::Or(l, r) => Expr::Or(bx(l), bx(r)),
        Expr::In { negated, value, set } => {
            Expr::In { negated: *negated, value: bx(value), set: set.iter().map(|s| substitute(s, index, v)).collect() }
        }
    }
}

fn reads_args(e: &Expr) -> bool {
    match e {
        Expr::Arg(_) => true,
        Expr::Bool(_) | Expr::Num(_) => false,
        Expr::Unary(_, x) => reads_args(x),
        Expr::Binary(_, l, r) | Expr::Compare(_, l, r) | Expr::BitTest(l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
            reads_args(l) || reads_args(r)
        }
        Expr::In { value, set, .. } => reads_args(value) || set.iter().any(reads_args),
    }
}

/// `e` with its constant parts evaluated; `&&` and `||` with a constant side simplified.
fn fold(e: &Expr) -> Expr {
    if !reads_args(e) {
        return Expr::Bool(eval::truth(e, &[0; 6]));
    }
    match e {
        Expr::And(l, r) => match (fold(l), fold(r)) {
            (Expr::Bool(false), _) | (_, Expr::Bool(false)) => Expr::Bool(false),
            (Expr::Bool(true), x) | (x, Expr::Bool(true)) => x,
            (l, r) => Expr::And(Box::new(l), Box::new(r)),
        },
        Expr::Or(l, r) => match (fold(l), fold(r)) {
            (Expr::Bool(true), _) | (_, Expr::Bool(true)) => Expr::Bool(true),
            (Expr::Bool(false), x) | (x, Expr::Bool(false)) => x,
            (l, r) => Expr::Or(Box::new(l), Box::new(r)),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
