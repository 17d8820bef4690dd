//! The seccomp policy language of the original Oz (gosecco) and its compiler to BPF.
//!
//! - [`parse_policy`] / [`load_policy_file`]: text to the typed IR ([`Policy`]); errors carry
//!   file, line and column.
//! - [`compile`]: IR to BPF programs (libseccomp) before fork; [`CompiledFilter::install`] loads
//!   them after fork without allocating.
//! - [`compile_profile`]: the filter a profile's `seccomp` section asks for.
//! - [`default_blacklist`]: oz's built-in blacklist.

pub mod compile;
pub mod consts;
pub mod default_policy;
pub mod dnf;
pub mod error;
pub mod expr_parser;
pub mod from_profile;
pub mod hardening;
pub mod ir;
pub mod lexer;
pub mod parser;
pub mod syscalls;

pub use compile::{compile, hardening_only, CompileError, CompiledFilter};
pub use default_policy::{default_blacklist, training_whitelist};
pub use error::{ErrorKind, PolicyError};
pub use from_profile::{compile_profile, ProfileSeccompError};
pub use ir::{Action, Expr, Policy, Rule, RuleAction, Span};
pub use parser::{load_policy_file, parse_policy};
