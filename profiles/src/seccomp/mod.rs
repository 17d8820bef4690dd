//! The seccomp policy language of the original Oz (gosecco) and its compiler to BPF.

pub mod consts;
pub mod ir;
pub mod error;
pub mod expr_parser;
pub mod lexer;
pub mod syscalls;
