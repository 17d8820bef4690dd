//! oz-setup's command line (also read by the packaging tool for its man page and completions).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "oz-setup", version, about = "check and show the oz configuration and profiles, wrap programs")]
pub struct Cli {
    /// Config file (default: $OZ_CONFIG, else /etc/oz/oz.conf)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// oz.conf commands
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Profile commands
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Wrap a profile's programs: divert each with dpkg-divert, a symlink to oz in its place
    Install(super::ChangeArgs),
    /// Unwrap a profile's programs: remove the symlinks and diversions install made
    Remove(super::ChangeArgs),
    /// Show, per program path, its diversion, real binary and symlink
    Status(super::StatusArgs),
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print every key, its value and a one-line description
    Show,
    /// Load the config and every profile in profile_dir
    Check,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Check profile files: prints `FILE: ok` or the errors; exit 1 on any error
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
