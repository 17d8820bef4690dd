//! The `oz` client: command-line parsing, one module per group of commands, and wrapper mode.

mod args;
mod conn;
mod guard;
mod launch;
mod listing;
mod output;
mod run_pty;
mod sandbox;
mod shell_relay;
mod tty;
mod wrapper;
mod wrapper_paths;

use anyhow::{bail, Result};
use args::{Cli, Command};
use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;

/// The clap definition of `oz`, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match dispatch(argv) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("oz: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(argv: Vec<OsString>) -> Result<u8> {
    let argv0 = argv.first().cloned().unwrap_or_else(|| "oz".into());
    let wrapper = wrapper_paths::invoked_basename(&argv0) != "oz";
    if let Some(why) = guard::inside_sandbox() {
        let what = if wrapper { format!("launch {}", argv0.to_string_lossy()) } else { "use oz".to_string() };
        bail!("refusing to {what} inside an oz sandbox ({why}); run it on the host");
    }
    if wrapper {
        return wrapper::run(&argv0, &argv[1..]);
    }
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => return Err(usage_error(&e)),
    };
    match cli.command {
        Command::Profiles { json } => listing::profiles(json),
        Command::Launch { noexec, json, profile, args } => launch::launch(&profile, args, noexec, json),
        Command::Run { profile, args } => launch::run(&profile, args),
        Command::List { json } => listing::list(json),
        Command::Kill { target } => sandbox::kill(target),
        Command::Shell { id } => sandbox::shell(id),
        Command::Logs { follow, sandbox, count, json } => listing::logs(follow, sandbox, count, json),
        Command::Mount { id, readonly, paths } => sandbox::mount(id, readonly, paths),
        Command::Umount { id, path } => sandbox::umount(id, path),
    }
}

/// clap's multi-line usage error as one line (`oz: invalid value 'x' for '<TARGET>': ...`).
fn usage_error(e: &clap::Error) -> anyhow::Error {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid command line");
    anyhow::anyhow!("{} (see oz --help)", first.trim_start_matches("error: "))
}
