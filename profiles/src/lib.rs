//! oz profiles: the profile and oz.conf model, variable expansion, and the seccomp policy language.

pub mod config;
pub mod config_load;
pub mod divert;
pub mod ephemeral;
pub mod expand;
pub mod json;
pub mod load;
pub mod profile;
pub mod program;
pub mod seccomp;
pub mod validate;

pub use config::Config;
pub use profile::Profile;
