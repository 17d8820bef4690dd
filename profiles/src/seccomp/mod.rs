//! The seccomp policy language of the original Oz (gosecco) and its compiler to BPF.

pub mod consts;
pub mod ir;
pub mod error;
pub mod expr_parser;
pub mod lexer;
pub mod syscalls;
pub mod parser;

pub use error::{ErrorKind, PolicyError};
pub use ir::{Action, Expr, Policy, Rule, RuleAction, Span};
pub use parser::{load_policy_file, parse_policy};
pub mod dnf;
