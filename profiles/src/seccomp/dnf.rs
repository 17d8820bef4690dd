//! Lowering a condition to what libseccomp can express: an OR of rules, each an AND of at most
//! one comparison per argument, each comparison `argN <op> constant` or `(argN & mask) == value`.
//!
//! - `!` is pushed down to the comparisons (De Morgan), `||` under `&&` is distributed.
//! - A numeric expression in boolean position means `!= 0`; `a &? m` means `(a & m) != 0`.
//! - `(a & m) != v` is an OR of one single-bit masked test per bit of `m`; this also turns
//!   `arg & MASK` (any of the bits set) into one rule per bit.
//! - Several comparisons on one argument inside one AND are merged: equalities are checked
//!   against the rest, masked tests combined, and ranges split into aligned masked blocks.

use super::ir::{ArgPart, BinOp, CmpOp, Expr, UnaryOp};

/// Most alternatives (libseccomp rules) one condition may expand to.
pub const MAX_TERMS: usize = 1024;

/// A comparison libseccomp can evaluate in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Test {
    Cmp(CmpOp, u64),
    /// `(arg & mask) == value`.
    Masked {
        mask: u64,
        value: u64,
    },
}

impl Test {
    pub fn eval(self, a: u64) -> bool {
        match self {
            Test::Cmp(op, v) => match op {
                CmpOp::Eq => a == v,
                CmpOp::Ne => a != v,
                CmpOp::Lt => a < v,
                CmpOp::Le => a <= v,
                CmpOp::Gt => a > v,
                CmpOp::Ge => a >= v,
            },
            Test::Masked { mask, value } => a & mask == value,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom {
    pub arg: u8,
    pub test: Test,
}

/// OR of ANDs. `vec![]` is false, `vec![vec![]]` is true.
pub type Dnf = Vec<Vec<Atom>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error("condition expands to more than {0} seccomp rules; simplify it")]
    TooLarge(usize),
    #[error("cannot compile {0}: only argN, argN & MASK, argLN and argHN compared with a constant are supported")]
    Unsupported(String),
    #[error("cannot combine a mask test with an ordering comparison on arg{0} in one condition")]
    MixedMaskAndRange(u8),
}

/// The DNF of `e` (or of `!e` when `positive` is false), simplified per argument.
pub fn lower(e: &Expr, positive: bool) -> Result<Dnf, LowerError> {
    let raw = to_dnf(e, positive)?;
    let mut out: Dnf = Vec::new();
    for conj in raw {
        for simplified in simplify_conjunction(conj)? {
            if simplified.is_empty() {
                return Ok(vec![Vec::new()]);
            }
            if !out.contains(&simplified) {
                out.push(simplified);
            }
            check_size(out.len())?;
        }
    }
    Ok(out)
}

fn check_size(n: usize) -> Result<(), LowerError> {
    if n > MAX_TERMS {
        Err(LowerError::TooLarge(MAX_TERMS))
    } else {
        Ok(())
    }
}

fn truth(b: bool) -> Dnf {
    if b {
        vec![Vec::new()]
    } else {
        Vec::new()
    }
}

fn or(mut a: Dnf, b: Dnf) -> Result<Dnf, LowerError> {
    if a.iter().chain(&b).any(Vec::is_empty) {
        return Ok(truth(true));
    }
    a.extend(b);
    check_size(a.len())?;
    Ok(a)
}

fn and(a: Dnf, b: Dnf) -> Result<Dnf, LowerError> {
    check_size(a.len().saturating_mul(b.len()))?;
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut c = x.clone();
            c.extend_from_slice(y);
            out.push(c);
        }
    }
    Ok(out)
}

fn to_dnf(e: &Expr, pos: bool) -> Result<Dnf, LowerError> {
    match e {
        Expr::Bool(b) => Ok(truth(*b == pos)),
        Expr::Num(n) => Ok(truth((*n != 0) == pos)),
        Expr::Unary(UnaryOp::Not, inner) => to_dnf(inner, !pos),
        Expr::And(a, b) if pos => and(to_dnf(a, true)?, to_dnf(b, true)?),
        Expr::And(a, b) => or(to_dnf(a, false)?, to_dnf(b, false)?),
        Expr::Or(a, b) if pos => or(to_dnf(a, true)?, to_dnf(b, true)?),
        Expr::Or(a, b) => and(to_dnf(a, false)?, to_dnf(b, false)?),
        Expr::Compare(op, l, r) => compare(*op, l, r, pos),
        Expr::BitTest(l, r) => {
            let masked = Expr::Binary(BinOp::And, l.clone(), r.clone());
            compare(CmpOp::Ne, &masked, &Expr::Num(0), pos)
        }
        Expr::In { negated, value, set } => {
            // in(v, a, b) == (v == a || v == b); negation flips both.
            let mut acc = truth(*negated == pos);
            for candidate in set {
                let op = if *negated { CmpOp::Ne } else { CmpOp::Eq };
                let t = compare(op, value, candidate, pos)?;
                acc = if *negated == pos { and(acc, t)? } else { or(acc, t)? };
            }
            Ok(acc)
        }
        // A numeric value in boolean position: true when non-zero.
        Expr::Arg(_) | Expr::Binary(..) | Expr::Unary(UnaryOp::BitNot, _) => compare(CmpOp::Ne, e, &Expr::Num(0), pos),
    }
}

/// `argN [& mask] op constant` (either side), as atoms.
fn compare(op: CmpOp, l: &Expr, r: &Expr, pos: bool) -> Result<Dnf, LowerError> {
    let op = if pos { op } else { op.negated() };
    let (side, value, op) = match (l, r) {
        (Expr::Num(a), Expr::Num(b)) => return Ok(truth(op.eval(*a, *b))),
        (side, Expr::Num(v)) => (side, *v, op),
        (Expr::Num(v), side) => (side, *v, op.mirrored()),
        _ => return Err(unsupported(l, op, r)),
    };
    let (arg, mask) = match side {
        Expr::Arg(a) => match a.part {
            ArgPart::Full => (a.index, None),
            ArgPart::Low => (a.index, Some(0xffff_ffff)),
            ArgPart::High => {
                // argHN == v is (argN & 0xffffffff00000000) == v << 32.
                if value > 0xffff_ffff {
                    return Ok(truth(op == CmpOp::Ne));
                }
                return masked(a.index, 0xffff_ffff_0000_0000, value << 32, op, l, r);
            }
        },
        Expr::Binary(BinOp::And, x, y) => match (&**x, &**y) {
            (Expr::Arg(a), Expr::Num(m)) | (Expr::Num(m), Expr::Arg(a)) if a.part == ArgPart::Full => {
                (a.index, Some(*m))
            }
            _ => return Err(unsupported(l, op, r)),
        },
        _ => return Err(unsupported(l, op, r)),
    };
    match mask {
        None => Ok(vec![vec![Atom { arg, test: Test::Cmp(op, value) }]]),
        Some(m) => masked(arg, m, value, op, l, r),
    }
}

/// `(argN & mask) op value` for `==` and `!=`.
fn masked(arg: u8, mask: u64, value: u64, op: CmpOp, l: &Expr, r: &Expr) -> Result<Dnf, LowerError> {
    match op {
        CmpOp::Eq if value & !mask != 0 => Ok(truth(false)),
        CmpOp::Eq => Ok(vec![vec![Atom { arg, test: Test::Masked { mask, value } }]]),
        CmpOp::Ne if value & !mask != 0 => Ok(truth(true)),
        CmpOp::Ne => {
            // Some bit of the mask differs from value: one single-bit test per mask bit.
            let bits = (0..64).map(|i| 1u64 << i).filter(|b| mask & b != 0);
            let terms = bits.map(|b| vec![Atom { arg, test: Test::Masked { mask: b, value: (value & b) ^ b } }]);
            Ok(terms.collect())
        }
        _ => Err(unsupported(l, op, r)),
    }
}

fn unsupported(l: &Expr, op: CmpOp, r: &Expr) -> LowerError {
    LowerError::Unsupported(format!("{l} {} {r}", op.symbol()))
}

/// Rewrites one AND so that each argument has at most one test; may split it into several.
fn simplify_conjunction(mut conj: Vec<Atom>) -> Result<Dnf, LowerError> {
    conj.sort();
    conj.dedup();
    let mut result: Dnf = vec![Vec::new()];
    let mut i = 0;
    while i < conj.len() {
        let arg = conj[i].arg;
        let end = conj[i..].iter().position(|a| a.arg != arg).map_or(conj.len(), |p| i + p);
        let tests: Vec<Test> = conj[i..end].iter().map(|a| a.test).collect();
        let options = merge_tests(arg, &tests)?;
        let alternatives: Dnf =
            options.into_iter().map(|t| t.map(|test| vec![Atom { arg, test }]).unwrap_or_default()).collect();
        result = and(result, alternatives)?;
        i = end;
    }
    Ok(result)
}

/// Alternatives equivalent to the AND of `tests` on one argument; `None` = no test needed.
fn merge_tests(arg: u8, tests: &[Test]) -> Result<Vec<Option<Test>>, LowerError> {
    if let [only] = tests {
        return Ok(vec![Some(*only)]);
    }
    // An equality decides everything else.
    if let Some(v) = tests.iter().find_map(|t| match t {
        Test::Cmp(CmpOp::Eq, v) => Some(*v),
        _ => None,
    }) {
        let ok = tests.iter().all(|t| t.eval(v));
        return Ok(if ok { vec![Some(Test::Cmp(CmpOp::Eq, v))] } else { Vec::new() });
    }
    let masks: Vec<(u64, u64)> = tests
        .iter()
        .filter_map(|t| match t {
            Test::Masked { mask, value } => Some((*mask, *value)),
            _ => None,
        })
        .collect();
    if masks.is_empty() {
        return Ok(intervals_to_tests(allowed_intervals(tests)));
    }
    let (mut mask, mut value) = (0u64, 0u64);
    for (m, v) in masks {
        if (value ^ v) & mask & m != 0 {
            return Ok(Vec::new()); // contradictory bits
        }
        mask |= m;
        value |= v;
    }
    let combined = Test::Masked { mask, value };
    for t in tests {
        match *t {
            Test::Masked { .. } => {}
            // `!= x` is redundant when x fails the mask test anyway.
            Test::Cmp(CmpOp::Ne, x) if !combined.eval(x) => {}
            Test::Cmp(..) => return Err(LowerError::MixedMaskAndRange(arg)),
        }
    }
    Ok(vec![Some(combined)])
}

/// Inclusive intervals of values satisfying all comparison tests.
fn allowed_intervals(tests: &[Test]) -> Vec<(u64, u64)> {
    let mut set = vec![(0u64, u64::MAX)];
    for t in tests {
        let Test::Cmp(op, v) = *t else { continue };
        let allowed: Vec<(u64, u64)> = match op {
            CmpOp::Eq => vec![(v, v)],
            CmpOp::Ne => {
                let mut r = Vec::new();
                if v > 0 {
                    r.push((0, v - 1));
                }
                if v < u64::MAX {
                    r.push((v + 1, u64::MAX));
                }
                r
            }
            CmpOp::Lt if v == 0 => Vec::new(),
            CmpOp::Lt => vec![(0, v - 1)],
            CmpOp::Le => vec![(0, v)],
            CmpOp::Gt if v == u64::MAX => Vec::new(),
            CmpOp::Gt => vec![(v + 1, u64::MAX)],
            CmpOp::Ge => vec![(v, u64::MAX)],
        };
        set = intersect(&set, &allowed);
    }
    set
}

fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out
}

/// One test per interval where possible, aligned masked blocks for bounded ranges.
fn intervals_to_tests(set: Vec<(u64, u64)>) -> Vec<Option<Test>> {
    // The complement of a single point is one `!=`.
    if let [(0, a), (b, u64::MAX)] = set.as_slice() {
        if a.checked_add(2) == Some(*b) {
            return vec![Some(Test::Cmp(CmpOp::Ne, a + 1))];
        }
    }
    let mut out = Vec::new();
    for (lo, hi) in set {
        match (lo, hi) {
            (0, u64::MAX) => out.push(None),
            (lo, hi) if lo == hi => out.push(Some(Test::Cmp(CmpOp::Eq, lo))),
            (0, hi) => out.push(Some(Test::Cmp(CmpOp::Le, hi))),
            (lo, u64::MAX) => out.push(Some(Test::Cmp(CmpOp::Ge, lo))),
            (lo, hi) => out.extend(aligned_blocks(lo, hi).map(Some)),
        }
    }
    out
}

/// `[lo, hi]` as a union of power-of-two aligned blocks, each one masked equality.
fn aligned_blocks(mut lo: u64, hi: u64) -> impl Iterator<Item = Test> {
    let mut blocks = Vec::new();
    loop {
        // Largest block starting at lo that is aligned and does not pass hi.
        let mut size_log = lo.trailing_zeros().min(63);
        while size_log > 0 && !matches!(lo.checked_add((1u64 << size_log) - 1), Some(end) if end <= hi) {
            size_log -= 1;
        }
        let span = (1u64 << size_log) - 1;
        blocks.push(Test::Masked { mask: !span, value: lo });
        match (lo + span).checked_add(1) {
            Some(next) if next <= hi => lo = next,
            _ => break,
        }
    }
    blocks.into_iter()
}

#[cfg(test)]
mod tests;
