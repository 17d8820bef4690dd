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
mod why;
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
        Command::Launch { noexec, ephemeral, json, profile, args } => {
            launch::launch(&profile, args, launch::Options { noexec, ephemeral }, json)
        }
        Command::Run { profile, args } => launch::run(&profile, args),
        Command::List { json } => listing::list(json),
        Command::Kill { target } => sandbox::kill(target),
        Command::Relaunchxpra { target } => sandbox::relaunch_xpra(target),
        Command::Shell { id } => sandbox::shell(id),
        Command::Logs { follow, sandbox, count, json } => listing::logs(follow, sandbox, count, json),
        Command::Mount { id, readonly, paths } => sandbox::mount(id, readonly, paths),
        Command::Umount { id, path } => sandbox::umount(id, path),
        Command::Forward { id, name, port } => sandbox::forward(id, name, port),
        Command::Forwarders { id, json } => sandbox::forwarders(id, json),
        Command::Why { id, json } => why::why(id, json),
    }
}

/// clap's multi-line usage error as one line that keeps every part of it: what is wrong, the
/// arguments concerned, tips and the usage (`oz: the following required arguments were not
/// provided: <PROFILE>; usage: oz launch ...`).
fn usage_error(e: &clap::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", one_line_usage(&e.render().to_string()))
}

fn one_line_usage(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information")) {
        let line = line.trim_start_matches("error: ");
        if out.is_empty() {
            out.push_str(line);
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            out.push_str(&format!("; usage: {usage}"));
        } else if out.ends_with(':') {
            out.push_str(&format!(" {line}"));
        } else {
            out.push_str(&format!(", {line}"));
        }
    }
    if out.is_empty() {
        out.push_str("invalid command line");
    }
    out.push_str(" (see oz --help)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn usage_of(argv: &[&str]) -> String {
        one_line_usage(&Cli::try_parse_from(argv).unwrap_err().render().to_string())
    }

    #[test]
    fn missing_arguments_are_named() {
        let s = usage_of(&["oz", "launch"]);
        assert!(s.starts_with("the following required arguments were not provided: <PROFILE>"), "{s}");
        assert!(s.contains("usage: oz launch"), "{s}");
        assert!(!s.contains('\n'), "{s}");
        let s = usage_of(&["oz", "mount", "1"]);
        assert!(s.contains("<PATHS>..."), "{s}");
    }

    #[test]
    fn invalid_values_keep_their_reason() {
        let s = usage_of(&["oz", "kill", "x"]);
        assert!(s.contains("expected a sandbox id or `all`"), "{s}");
        let s = usage_of(&["oz", "frobnicate"]);
        assert!(s.contains("unrecognized subcommand 'frobnicate'"), "{s}");
    }
}
