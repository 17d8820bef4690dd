//! The seccomp policy language of the original Oz (gosecco) and its typed IR. Pure: compiling
//! the IR to BPF (libseccomp) and installing it is `oz_sandbox::seccomp`.
//!
//! - [`parse_policy`] / [`load_policy_file`]: text to the typed IR ([`Policy`]); errors carry
//!   file, line and column.
//! - [`dnf::lower`]: a condition lowered to the rules a filter can express.
//! - [`eval::decide`]: the action (and rule) of a policy for one concrete call;
//!   [`decode`]: its arguments for people; [`report`]: the denial records `oz why` reads;
//!   [`train`]: training records to a whitelist, merged with an earlier one.
//! - [`compat::modernize`]: a policy's legacy calls also cover the newer calls glibc makes in
//!   their place, with the same meaning (allowed by a whitelist, denied by a blacklist).
//! - [`default_blacklist`]: oz's built-in blacklist; [`generic::generic_blacklist`]: the
//!   admin's `/etc/oz/blacklist-generic.seccomp` in its place when present.
//!
//! # Language (see [`parser`] for the line forms, [`expr_parser`] for precedence)
//! - One line each: `# comment`, `NAME = expr`, `name(p, q) = expr`, `DEFAULT_POSITIVE |
//!   DEFAULT_NEGATIVE | DEFAULT_POLICY = action`, `syscall[+action, -action]: expr`,
//!   `syscall: return ERRNO`, `syscall: expr; return ERRNO`. `#` anywhere starts a comment.
//! - Values: decimal, `0x` hex, `0` octal, `0b` binary literals (64-bit), `arg0`..`arg5`,
//!   `argL0`/`argH0` (low/high 32 bits), built-in constants ([`consts`]), earlier definitions.
//! - Operators, loosest first: `||`, `&&`, `== !=`, `< <= > >= &?`, `|`, `^`, `&`, `<< >>`,
//!   `+ -`, `* / %`, unary `! ~`; `in(v, a, ...)`, `notIn(v, a, ...)`, `true`, `false`.
//!   Bitwise operators bind tighter than comparisons (gosecco, unlike C).
//! - A numeric expression where a condition is expected is true when non-zero (C rules), so
//!   `1` allows, `0` never matches, and `arg0 & CLONE_NEWUSER` means "that bit is set";
//!   `a &? m` is gosecco's spelling of the same test.
//! - Actions: `allow`, `kill`, `trap`, `trace` (compiled as log: oz runs no tracer), `log`,
//!   an errno name (`EPERM`) or number.
//!
//! # What compiles
//! Comparisons of `argN`, `argN & MASK`, `argLN` or `argHN` with a constant, combined with any
//! `&& || !` nesting (converted to disjunctive normal form, at most [`dnf::MAX_TERMS`] rules
//! per syscall). Several comparisons of one argument in one conjunction are merged (equalities,
//! masks, ranges split into aligned masked blocks). Not compilable, with an error naming the
//! rule: comparing two arguments, arithmetic on arguments other than `& MASK`, ordering
//! comparisons on `argLN`/`argHN` or combined with a mask on the same argument.
//! Comparisons are on the full 64-bit register, as the original did: a blacklist rule on an
//! `int` argument can be sidestepped by setting the upper 32 bits (use `argLN` there).

pub mod compat;
pub mod consts;
pub mod decode;
pub mod default_policy;
pub mod dnf;
pub mod error;
pub mod eval;
pub mod expr_parser;
pub mod generic;
pub mod ir;
pub mod lexer;
pub mod names;
pub mod parser;
pub mod report;
pub mod train;

pub use default_policy::{default_blacklist, training_whitelist};
pub use error::{ErrorKind, PolicyError};
pub use ir::{Action, Expr, Policy, Rule, RuleAction, Span};
pub use parser::{load_policy_file, parse_policy};
