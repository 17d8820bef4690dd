//! The typed policy IR: what a parsed gosecco policy file means, before compilation.
//!
//! Named constants and macros are already substituted and constant sub-expressions folded,
//! so a condition only mentions literals and syscall arguments.

use std::path::PathBuf;

/// A 1-based position in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

/// A parsed policy file (plus any extra definition files loaded before it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// The file the rules came from (`<builtin:...>` for built-in policies).
    pub origin: PathBuf,
    pub rules: Vec<Rule>,
    /// `DEFAULT_POSITIVE`, `DEFAULT_NEGATIVE` and `DEFAULT_POLICY` assignments, if any.
    pub defaults: Defaults,
}

/// File-wide default actions set with `DEFAULT_POSITIVE = trace` style assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Defaults {
    pub positive: Option<Action>,
    pub negative: Option<Action>,
    /// Action for syscalls no rule names.
    pub policy: Option<Action>,
}

/// One `syscall[actions]: condition` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub syscall: String,
    pub action: RuleAction,
    pub condition: Expr,
    pub span: Span,
    /// The file the rule came from when it is not the policy's own ([`Policy::origin`]): an
    /// `extradefs` file.
    pub origin: Option<PathBuf>,
}

impl Rule {
    /// The file the rule is written in.
    pub fn file<'a>(&'a self, policy: &'a Policy) -> &'a std::path::Path {
        self.origin.as_deref().unwrap_or(&policy.origin)
    }
}

/// Per-rule overrides of the positive (condition true) and negative (condition false) actions.
///
/// `None` means "the mode's default": in whitelist mode positive = allow, negative = deny;
/// in blacklist mode positive = deny, negative = allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RuleAction {
    pub positive: Option<Action>,
    pub negative: Option<Action>,
}

/// A seccomp return action as the policy language names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    /// Kill the whole process.
    Kill,
    /// Send SIGSYS.
    Trap,
    /// gosecco's `trace`: oz has no tracer, so it compiles to log-and-allow.
    Trace,
    /// Log and allow.
    Log,
    /// Fail the call with this errno.
    Errno(u16),
}

/// Which part of a 64-bit syscall argument an `argN`, `argHN` or `argLN` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgPart {
    Full,
    High,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgRef {
    pub index: u8,
    pub part: ArgPart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`: boolean negation.
    Not,
    /// `~`: bitwise complement.
    BitNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// Ordered so that conjunctions of tests can be sorted and deduplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn mirrored(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    /// The logical complement: `!(a < b)` is `a >= b`.
    pub fn negated(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    }

    pub fn eval(self, a: u64, b: u64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A condition. Numeric sub-expressions used where a boolean is expected mean "!= 0" (C rules).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Bool(bool),
    Num(u64),
    Arg(ArgRef),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `a &? b`: true when `a & b` has any bit set.
    BitTest(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `in(v, a, b, ...)` / `notIn(v, a, b, ...)`.
    In {
        negated: bool,
        value: Box<Expr>,
        set: Vec<Expr>,
    },
}

impl Expr {
    /// True for the unconditional `1` (or any other constant true condition).
    pub fn is_const_true(&self) -> bool {
        matches!(self, Expr::Bool(true)) || matches!(self, Expr::Num(n) if *n != 0)
    }
}

impl std::fmt::Display for Expr {
    /// Source-like rendering, fully parenthesised, for error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Num(n) if *n < 4096 => write!(f, "{n}"),
            Expr::Num(n) => write!(f, "{n:#x}"),
            Expr::Arg(a) => {
                let part = match a.part {
                    ArgPart::Full => "",
                    ArgPart::High => "H",
                    ArgPart::Low => "L",
                };
                write!(f, "arg{part}{}", a.index)
            }
            Expr::Unary(UnaryOp::Not, e) => write!(f, "!{e}"),
            Expr::Unary(UnaryOp::BitNot, e) => write!(f, "~{e}"),
            Expr::Binary(op, l, r) => {
                let op = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Mod => "%",
                    BinOp::And => "&",
                    BinOp::Or => "|",
                    BinOp::Xor => "^",
                    BinOp::Shl => "<<",
                    BinOp::Shr => ">>",
                };
                write!(f, "({l} {op} {r})")
            }
            Expr::Compare(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::BitTest(l, r) => write!(f, "({l} &? {r})"),
            Expr::And(l, r) => write!(f, "({l} && {r})"),
            Expr::Or(l, r) => write!(f, "({l} || {r})"),
            Expr::In { negated, value, set } => {
                write!(f, "{}({value}", if *negated { "notIn" } else { "in" })?;
                for e in set {
                    write!(f, ", {e}")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}
