use std::path::Path;

use super::*;
use crate::seccomp::ir::{ArgRef, Expr};
use crate::seccomp::parse_policy;

fn condition(text: &str) -> Expr {
    let p = parse_policy(&format!("read: {text}"), Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
    p.rules[0].condition.clone()
}

/// Reference semantics of a condition, straight from the tree.
fn eval(e: &Expr, args: &[u64; 6]) -> u64 {
    let b = |x: bool| x as u64;
    match e {
        Expr::Bool(v) => b(*v),
        Expr::Num(n) => *n,
        Expr::Arg(ArgRef { index, part }) => {
            let v = args[*index as usize];
            match part {
                ArgPart::Full => v,
                ArgPart::Low => v & 0xffff_ffff,
                ArgPart::High => v >> 32,
            }
        }
        Expr::Unary(UnaryOp::Not, x) => b(eval(x, args) == 0),
        Expr::Unary(UnaryOp::BitNot, x) => !eval(x, args),
        Expr::Binary(op, l, r) => {
            let (l, r) = (eval(l, args), eval(r, args));
            match op {
                BinOp::And => l & r,
                BinOp::Or => l | r,
                BinOp::Xor => l ^ r,
                _ => panic!("unexpected arithmetic in test"),
            }
        }
        Expr::Compare(op, l, r) => b(op.eval(eval(l, args), eval(r, args))),
        Expr::BitTest(l, r) => b(eval(l, args) & eval(r, args) != 0),
        Expr::And(l, r) => b(eval(l, args) != 0 && eval(r, args) != 0),
        Expr::Or(l, r) => b(eval(l, args) != 0 || eval(r, args) != 0),
        Expr::In { negated, value, set } => {
            let v = eval(value, args);
            b(set.iter().any(|c| eval(c, args) == v) != *negated)
        }
    }
}

fn eval_dnf(d: &Dnf, args: &[u64; 6]) -> bool {
    d.iter().any(|conj| conj.iter().all(|a| a.test.eval(args[a.arg as usize])))
}

const SAMPLES: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    15,
    16,
    17,
    0x7f,
    0x80,
    0x81,
    0x100,
    0xfff,
    0x1000,
    0x5412,
    0x1000_0000,
    0x2002_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    u64::MAX - 1,
    u64::MAX,
];

/// Checks lowering against the reference semantics, for the condition and its negation,
/// with every sample value in arg0 and arg1 (arg2 cycles).
fn check(text: &str) {
    let e = condition(text);
    for positive in [true, false] {
        let d = lower(&e, positive).unwrap_or_else(|err| panic!("{text}: {err}"));
        for (i, &a0) in SAMPLES.iter().enumerate() {
            for &a1 in SAMPLES {
                let a2 = SAMPLES[(i * 7 + (a1 % 64) as usize) % SAMPLES.len()];
                let args = [a0, a1, a2, 0, 0, 0];
                let want = (eval(&e, &args) != 0) == positive;
                assert_eq!(eval_dnf(&d, &args), want, "{text} (positive={positive}) on {args:x?}: {d:?}");
                for conj in &d {
                    let mut seen: Vec<u8> = conj.iter().map(|a| a.arg).collect();
                    seen.dedup();
                    assert_eq!(seen.len(), conj.len(), "two tests on one arg: {conj:?}");
                }
            }
        }
    }
}

#[test]
fn lowering_matches_reference_semantics() {
    for text in [
        "1",
        "0",
        "arg0 == 5",
        "arg0 != 5",
        "arg0 < 5 || arg0 > 0x1000",
        "arg0 >= 3 && arg0 <= 9",
        "arg0 > 2 && arg0 < 0x5412 && arg0 != 4",
        "arg0 != 1 && arg0 != 2",
        "arg0 != 7 && arg0 != 7",
        "arg0 == 1 && arg0 == 2",
        "arg0 == 3 && arg0 < 5",
        "!(arg0 == 1 || arg1 == 2) && arg2 != 3",
        "arg0 == 1 || arg1 == 2 && arg2 == 3",
        "(arg0 == 1 || arg0 == 2) && (arg1 == 3 || arg1 == 4)",
        "arg0 & 0x1000_0000".replace('_', "").as_str(),
        "arg0 & (CLONE_NEWUSER | CLONE_NEWNS)",
        "!(arg0 & (CLONE_NEWUSER | CLONE_NEWNS))",
        "arg1 &? SOCK_STREAM && arg0 == AF_UNIX",
        "(arg0 & 0xff) == 0x80",
        "(arg0 & 0xff) != 0x80",
        "(arg0 & 0xf0) == 0x80 && (arg0 & 0x0f) == 1",
        "(arg0 & 0xf0) == 0x80 && arg0 != 5",
        "argL0 == 5",
        "argH0 == 1",
        "argL0 != 0x5412",
        "in(arg0, 1, 2, 3) && notIn(arg1, 4, 5)",
        "!in(arg0, 1, 2)",
        "arg0",
        "!arg0",
        "!!(arg0 == 1)",
        "arg0 == 1 || 1",
        "arg0 >= 0",
        "arg0 > 18446744073709551615",
    ] {
        check(text);
    }
}

#[test]
fn ranges_become_single_comparisons_or_masked_blocks() {
    let d = lower(&condition("arg0 >= 3 && arg0 <= 9"), true).unwrap();
    // [3,9] = {3} [4,7] [8,9]
    assert_eq!(d.len(), 3);
    let d = lower(&condition("arg0 > 2 && arg0 >= 5"), true).unwrap();
    assert_eq!(d, vec![vec![Atom { arg: 0, test: Test::Cmp(CmpOp::Ge, 5) }]]);
}

#[test]
fn bit_tests_expand_per_bit() {
    let d = lower(&condition("arg0 & (CLONE_NEWUSER | CLONE_NEWNS)"), true).unwrap();
    assert_eq!(d.len(), 2);
    let d = lower(&condition("!(arg0 & (CLONE_NEWUSER | CLONE_NEWNS))"), true).unwrap();
    let mask = 0x1000_0000 | 0x2_0000;
    assert_eq!(d, vec![vec![Atom { arg: 0, test: Test::Masked { mask, value: 0 } }]]);
}

#[test]
fn unsupported_and_oversized_conditions_are_errors() {
    assert!(matches!(lower(&condition("arg0 == arg1"), true), Err(LowerError::Unsupported(_))));
    assert!(matches!(lower(&condition("arg0 + 1 == 3"), true), Err(LowerError::Unsupported(_))));
    let e = condition("(arg0 & 0xf0) == 0x80 && arg0 < 0x85");
    assert_eq!(lower(&e, true), Err(LowerError::MixedMaskAndRange(0)));
    let clause = |i: u32| format!("(arg0 == {} || arg1 == {} || arg2 == {} || arg3 == {})", i, i, i, i);
    let huge: Vec<String> = (0..6).map(clause).collect();
    let e = condition(&huge.join(" && "));
    assert_eq!(lower(&e, true), Err(LowerError::TooLarge(MAX_TERMS)));
}
