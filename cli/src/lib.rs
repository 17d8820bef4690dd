//! oz-cli: the `oz` client of oz-daemon (command-line parsing, one module per group of
//! commands, and wrapper mode), as a library so its modules are built and tested once.

pub mod oz;
pub mod setup;
