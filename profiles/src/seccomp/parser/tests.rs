use std::path::Path;

use super::*;
use crate::seccomp::ir::{ArgPart, ArgRef, BinOp, CmpOp, UnaryOp};

fn parse(text: &str) -> Policy {
    parse_policy(text, Path::new("t.seccomp")).unwrap_or_else(|e| panic!("{e}"))
}

fn cond(text: &str) -> Expr {
    let p = parse(text);
    assert_eq!(p.rules.len(), 1);
    p.rules[0].condition.clone()
}

fn err(text: &str) -> PolicyError {
    parse_policy(text, Path::new("t.seccomp")).unwrap_err()
}

fn arg(i: u8) -> Box<Expr> {
    Box::new(Expr::Arg(ArgRef { index: i, part: ArgPart::Full }))
}

fn num(n: u64) -> Box<Expr> {
    Box::new(Expr::Num(n))
}

fn cmp(op: CmpOp, i: u8, n: u64) -> Expr {
    Expr::Compare(op, arg(i), num(n))
}

#[test]
fn unconditional_rules_comments_and_blank_lines() {
    let p = parse("# header\n\nread: 1\n  write : 1   \n#open: 1\nclose:1 # trailing\n");
    let names: Vec<&str> = p.rules.iter().map(|r| r.syscall.as_str()).collect();
    assert_eq!(names, ["read", "write", "close"]);
    assert!(p.rules.iter().all(|r| r.condition.is_const_true()));
    assert_eq!(p.rules[1].span, Span { line: 4, col: 3 });
}

#[test]
fn zero_is_a_false_condition() {
    assert_eq!(cond("read: 0"), Expr::Num(0));
    assert!(!cond("read: 0").is_const_true());
}

#[test]
fn literals_in_every_base() {
    assert_eq!(cond("read: arg0 == 42"), cmp(CmpOp::Eq, 0, 42));
    assert_eq!(cond("read: arg0 == 0x2a"), cmp(CmpOp::Eq, 0, 42));
    assert_eq!(cond("read: arg0 == 0X2A"), cmp(CmpOp::Eq, 0, 42));
    assert_eq!(cond("read: arg0 == 052"), cmp(CmpOp::Eq, 0, 42));
    assert_eq!(cond("read: arg0 == 0b101010"), cmp(CmpOp::Eq, 0, 42));
}

#[test]
fn every_comparison_operator() {
    let ops = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<", CmpOp::Lt),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        (">=", CmpOp::Ge),
    ];
    for (text, op) in ops {
        assert_eq!(cond(&format!("read: arg2 {text} 7")), cmp(op, 2, 7), "{text}");
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let c = cond("read: arg0 == 1 || arg1 == 2 && arg2 == 3");
    let and = Expr::And(Box::new(cmp(CmpOp::Eq, 1, 2)), Box::new(cmp(CmpOp::Eq, 2, 3)));
    assert_eq!(c, Expr::Or(Box::new(cmp(CmpOp::Eq, 0, 1)), Box::new(and)));
}

#[test]
fn parentheses_override_precedence() {
    let c = cond("read: (arg0 == 1 || arg1 == 2) && arg2 == 3");
    let or = Expr::Or(Box::new(cmp(CmpOp::Eq, 0, 1)), Box::new(cmp(CmpOp::Eq, 1, 2)));
    assert_eq!(c, Expr::And(Box::new(or), Box::new(cmp(CmpOp::Eq, 2, 3))));
}

#[test]
fn bitwise_operators_bind_tighter_than_comparisons() {
    // gosecco precedence: `|` before `==`, so this is arg1 == (2 | 2048).
    assert_eq!(cond("socket: arg1 == SOCK_DGRAM|SOCK_NONBLOCK"), cmp(CmpOp::Eq, 1, 2 | 2048));
    // `&` with an argument stays symbolic: (arg1 & 0x10000000) != 0 in boolean context.
    let c = cond("clone: arg0 & CLONE_NEWUSER");
    assert_eq!(c, Expr::Binary(BinOp::And, arg(0), num(0x1000_0000)));
    let c = cond("clone: arg0 & 3 == 1");
    let masked = Box::new(Expr::Binary(BinOp::And, arg(0), num(3)));
    assert_eq!(c, Expr::Compare(CmpOp::Eq, masked, num(1)));
}

#[test]
fn arithmetic_is_folded_left_to_right() {
    assert_eq!(cond("read: arg0 == 10 - 2 - 3"), cmp(CmpOp::Eq, 0, 5));
    assert_eq!(cond("read: arg0 == 2 + 3 * 4"), cmp(CmpOp::Eq, 0, 14));
    assert_eq!(cond("read: arg0 == 1 << 4 | 1"), cmp(CmpOp::Eq, 0, 17));
    assert_eq!(cond("read: arg0 == (7 ^ 1) % 4"), cmp(CmpOp::Eq, 0, 2));
    assert_eq!(cond("read: arg0 == ~0"), cmp(CmpOp::Eq, 0, u64::MAX));
    assert_eq!(cond("read: 2 > 1"), Expr::Bool(true));
}

#[test]
fn not_and_bit_test() {
    let c = cond("read: !(arg0 == 1)");
    assert_eq!(c, Expr::Unary(UnaryOp::Not, Box::new(cmp(CmpOp::Eq, 0, 1))));
    let c = cond("socket: arg1 &? SOCK_STREAM && arg2 == 0");
    let test = Expr::BitTest(arg(1), num(1));
    assert_eq!(c, Expr::And(Box::new(test), Box::new(cmp(CmpOp::Eq, 2, 0))));
    assert_eq!(cond("read: !0"), Expr::Bool(true));
}

#[test]
fn in_and_not_in() {
    let c = cond("read: in(arg0, 1, 2) || NOTIN(arg1, 3)");
    let a = Expr::In { negated: false, value: arg(0), set: vec![Expr::Num(1), Expr::Num(2)] };
    let b = Expr::In { negated: true, value: arg(1), set: vec![Expr::Num(3)] };
    assert_eq!(c, Expr::Or(Box::new(a), Box::new(b)));
}

#[test]
fn definitions_constants_and_macros() {
    let p = parse(
        "FOO=0x10\nBAR = FOO | 1\nIS_FOO = arg0 == FOO\nsame(x, y) = x == y\n\
         read: IS_FOO || arg1 == BAR\nwrite: same(arg2, BAR + 1)\n",
    );
    let c0 = Expr::Or(Box::new(cmp(CmpOp::Eq, 0, 0x10)), Box::new(cmp(CmpOp::Eq, 1, 0x11)));
    assert_eq!(p.rules[0].condition, c0);
    assert_eq!(p.rules[1].condition, cmp(CmpOp::Eq, 2, 0x12));
}

#[test]
fn definitions_shadow_builtins_and_only_files_parse() {
    let p = parse("AF_UNIX=99\nsocket: arg0 == AF_UNIX\n");
    assert_eq!(p.rules[0].condition, cmp(CmpOp::Eq, 0, 99));
    assert!(parse("A=1\nB=(A | 2)\nC=~(A | B)\n").rules.is_empty());
}

#[test]
fn return_errno_forms() {
    let p = parse("read: return EPERM\nwrite: return 13\nopen: arg1 == 0; return ENOENT\n");
    assert_eq!(p.rules[0].action.positive, Some(Action::Errno(1)));
    assert_eq!(p.rules[0].condition, Expr::Bool(true));
    assert_eq!(p.rules[1].action.positive, Some(Action::Errno(13)));
    assert_eq!(p.rules[2].action.negative, Some(Action::Errno(2)));
    assert_eq!(p.rules[2].condition, cmp(CmpOp::Eq, 1, 0));
}

#[test]
fn per_rule_actions() {
    let p = parse("read[+trace, -kill]: arg0 == 1\nfutex[-EPERM]: arg1 == 0\nwrite[+42]: 1\n");
    assert_eq!(p.rules[0].action, RuleAction { positive: Some(Action::Trace), negative: Some(Action::Kill) });
    assert_eq!(p.rules[1].action.negative, Some(Action::Errno(1)));
    assert_eq!(p.rules[2].action.positive, Some(Action::Errno(42)));
}

#[test]
fn default_actions() {
    let p = parse("DEFAULT_POSITIVE = trace\nDEFAULT_NEGATIVE = 42\nDEFAULT_POLICY = kill\n");
    assert_eq!(p.defaults.positive, Some(Action::Trace));
    assert_eq!(p.defaults.negative, Some(Action::Errno(42)));
    assert_eq!(p.defaults.policy, Some(Action::Kill));
}

fn assert_err(text: &str, line: u32, col: u32, kind: ErrorKind) {
    let e = err(text);
    assert_eq!((e.line, e.col, &e.kind), (line, col, &kind), "{e}");
}

#[test]
fn errors_carry_line_and_column() {
    assert_err("read: 1\nfrobnicate: 1\n", 2, 1, ErrorKind::UnknownSyscall("frobnicate".into()));
    assert_err("read: arg0 == AF_NOPE", 1, 15, ErrorKind::UnknownConstant("AF_NOPE".into()));
    assert_err("read: (arg0 == 1", 1, 7, ErrorKind::UnclosedParen);
    assert_err("read: arg0 == 1)", 1, 16, ErrorKind::UnopenedParen);
    assert_err("read: arg0 == ", 1, 14, ErrorKind::UnexpectedEnd("a value"));
    assert_err("read: arg0 == == 1", 1, 15, ErrorKind::UnexpectedToken { found: "'=='".into(), expected: "a value" });
    assert_err(
        "read: arg0 1",
        1,
        12,
        ErrorKind::UnexpectedToken { found: "number 1".into(), expected: "an operator or end of line" },
    );
    assert_err("\n\n  read: arg0 == 09", 3, 17, ErrorKind::InvalidNumber("09".into()));
    assert_err("read: arg0 == 1 / 0", 1, 17, ErrorKind::DivisionByZero);
    assert_err("read: return EWHAT", 1, 14, ErrorKind::UnknownAction("EWHAT".into()));
    assert_err("read: return 5000", 1, 14, ErrorKind::ErrnoOutOfRange(5000));
    assert_err("read[+bogus]: 1", 1, 7, ErrorKind::UnknownAction("bogus".into()));
    assert_err("read[+kill, +log]: 1", 1, 13, ErrorKind::DuplicateAction("positive"));
    assert_err("read 1", 1, 6, ErrorKind::NotARuleOrDefinition);
    assert_err("42: 1", 1, 1, ErrorKind::NotARuleOrDefinition);
    assert_err("read", 1, 5, ErrorKind::UnexpectedEnd("':' or '='"));
    assert_err("read:", 1, 6, ErrorKind::UnexpectedEnd("a condition"));
    assert_err(
        "f(x) = x == 1\nread: f(arg0, arg1)",
        2,
        7,
        ErrorKind::Arity { name: "f".into(), expected: 1, found: 2 },
    );
    assert_err("f(x) = x == 1\nread: f", 2, 7, ErrorKind::MacroNeedsArguments("f".into()));
    assert_err("read: arg0 == 1 @", 1, 17, ErrorKind::InvalidCharacter('@'));
}

#[test]
fn error_display_names_file_line_and_column() {
    let e = err("read: 1\nread: arg0 == NOPE\n");
    assert_eq!(e.to_string(), "t.seccomp:2:15: unknown constant \"NOPE\"");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("read: {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(matches!(err(&text).kind, ErrorKind::TooDeep(_)));
    let text = format!("read: {}1", "!".repeat(100_000));
    assert!(matches!(err(&text).kind, ErrorKind::TooDeep(_)));
}

#[test]
fn exponential_definitions_are_an_error_not_a_hang() {
    let mut text = String::from("D0 = arg0 == 1 || arg1 == 2\n");
    for i in 1..64 {
        text.push_str(&format!("D{i} = D{} || D{}\n", i - 1, i - 1));
    }
    text.push_str("read: D63\n");
    let e = err(&text);
    assert!(matches!(e.kind, ErrorKind::ExprTooLarge(_)), "{e}");
    let mut text = String::from("f0(x) = x == 1\n");
    for i in 1..64 {
        text.push_str(&format!("f{i}(x) = f{}(x) || f{}(x)\n", i - 1, i - 1));
    }
    text.push_str("read: f63(arg0)\n");
    let e = err(&text);
    assert!(matches!(e.kind, ErrorKind::ExprTooLarge(_)), "{e}");
}

#[test]
fn macros_cannot_recurse() {
    assert_err("f(x) = f(x) || f(x)\nread: f(arg0)", 1, 8, ErrorKind::UnknownConstant("f".into()));
    let text = "g(x) = x == 1\nf(x) = g(x)\ng(x) = f(x) || f(x)\nread: f(arg0)";
    assert_err(text, 3, 1, ErrorKind::MacroRedefined("g".into(), 1));
    let text = "g = 1\nf(x) = x == g\ng(x) = f(x)\n";
    assert_err(text, 3, 1, ErrorKind::MacroRedefined("g".into(), 1));
    assert_err("f(x) = x == 1\nf = 2\n", 2, 1, ErrorKind::MacroRedefined("f".into(), 1));
    assert_eq!(cond("f(x) = x == 1\nread: f(arg3)"), cmp(CmpOp::Eq, 3, 1));
}

#[test]
fn long_chains_are_balanced_and_deep_definitions_limited() {
    let chain: Vec<String> = (0..20_000).map(|i| format!("arg0 == {i}")).collect();
    parse(&format!("read: {}", chain.join(" || ")));
    let chain: Vec<String> = (0..1000).map(|i| format!("arg0 - {i}")).collect();
    let e = err(&format!("read: {} == 0", chain.join(" - ")));
    assert!(matches!(e.kind, ErrorKind::TooDeep(_)), "{e}");
    let mut text = String::from("N0 = arg0 == 1\n");
    for i in 1..400 {
        text.push_str(&format!("N{i} = !N{}\n", i - 1));
    }
    let e = err(&text);
    assert!(matches!(e.kind, ErrorKind::TooDeep(_)), "{e}");
}

#[test]
fn extradefs_inline_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.seccomp");
    std::fs::write(&defs, "MYFLAG=4\n").unwrap();
    let policy = dir.path().join("p.seccomp");
    std::fs::write(&policy, "read: arg0 == MYFLAG || arg1 == OTHER\n").unwrap();
    let extradefs = [defs.display().to_string(), "{inline}OTHER=5".to_string()];
    let p = load_policy_file(&policy, &extradefs).unwrap();
    let c = Expr::Or(Box::new(cmp(CmpOp::Eq, 0, 4)), Box::new(cmp(CmpOp::Eq, 1, 5)));
    assert_eq!(p.rules[0].condition, c);
    assert_eq!(p.origin, policy);
    let e = load_policy_file(dir.path().join("missing"), &[]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Read(_)), "{e}");
    assert!(e.to_string().contains("missing: read: "), "{e}");
}

#[test]
fn non_utf8_and_huge_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"read: 1\n\xff\xfe\n").unwrap();
    assert_eq!(load_policy_file(&bad, &[]).unwrap_err().kind, ErrorKind::NotUtf8);
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'#'; (MAX_POLICY_BYTES + 10) as usize]).unwrap();
    assert!(matches!(load_policy_file(&big, &[]).unwrap_err().kind, ErrorKind::TooLarge(..)));
}
