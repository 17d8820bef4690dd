//! oz-setup: inspect and check the oz configuration and profiles.
//!
//! `config show` prints every oz.conf key with its value and a description; `config check` loads
//! the config and every profile in `profile_dir`; `profile check FILE...` checks profile files.
//! Each error is one line naming file:line:col and key; the exit status is 1 if anything failed.
//! `install`, `remove` and `status` wrap programs with dpkg-divert (see `oz_cli::setup`).

use clap::Parser;
use oz_cli::setup;
use oz_cli::setup::cli::{Cli, Command, ConfigCommand, ProfileCommand};
use oz_profiles::config_load::{load_config, LoadedConfig};
use oz_profiles::load::{check_profile, load_profile_dir, Diagnostic};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that returns an error (a closed pipe) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { writeln!(std::io::stdout(), $($arg)*)? };
}

/// `eprintln!` likewise.
macro_rules! err {
    ($($arg:tt)*) => { writeln!(std::io::stderr(), $($arg)*)? };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match run(&cli) {
        Ok(ok) => ok,
        // The reader went away (`oz-setup config show | head`): nothing left to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => false,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "oz-setup: {e}");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Returns whether everything checked out.
fn run(cli: &Cli) -> io::Result<bool> {
    match &cli.command {
        Command::Config(ConfigCommand::Show) => config_show(cli.config.as_deref()),
        Command::Config(ConfigCommand::Check) => config_check(cli.config.as_deref()),
        Command::Profile(ProfileCommand::Check { files }) => profile_check(files),
        Command::Install(args) => with_config(cli, |c| setup::install(c, args)),
        Command::Remove(args) => with_config(cli, |c| setup::remove(c, args)),
        Command::Status(args) => with_config(cli, |c| setup::status(c, args)),
    }
}

/// Run a desktop-integration command with the loaded config; its errors become one line.
fn with_config(cli: &Cli, f: impl FnOnce(&oz_profiles::Config) -> anyhow::Result<bool>) -> io::Result<bool> {
    let Some(loaded) = config(cli.config.as_deref())? else {
        return Ok(false);
    };
    match f(&loaded.config) {
        Ok(ok) => Ok(ok),
        Err(e) => {
            err!("error: {e:#}");
            Ok(false)
        }
    }
}

/// Load the config, printing its warnings or its errors (one per line).
fn config(explicit: Option<&Path>) -> io::Result<Option<LoadedConfig>> {
    match load_config(explicit) {
        Ok(loaded) => {
            print_warnings(&loaded.warnings)?;
            Ok(Some(loaded))
        }
        Err(e) => {
            print_errors(&e.lines())?;
            Ok(None)
        }
    }
}

fn config_show(explicit: Option<&Path>) -> io::Result<bool> {
    let Some(loaded) = config(explicit)? else {
        return Ok(false);
    };
    let source = if loaded.from_file { "" } else { " (missing: defaults)" };
    out!("# {}{source}", loaded.path.display());
    let rows = loaded.config.describe();
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for row in rows {
        out!("{:width$}  {}  # {}", row.key, row.value, row.description);
    }
    Ok(true)
}

fn config_check(explicit: Option<&Path>) -> io::Result<bool> {
    let Some(loaded) = config(explicit)? else {
        return Ok(false);
    };
    let source = if loaded.from_file { "ok" } else { "missing, using defaults" };
    out!("{}: {source}", loaded.path.display());
    let generic_ok = setup::check_generic_blacklist(&loaded.config)?;
    let set = load_profile_dir(&loaded.config.profile_dir);
    print_warnings(&set.warnings)?;
    for p in &set.profiles {
        let file = p.profile_path.as_deref().unwrap_or(Path::new("?"));
        out!("{}: ok", file.display());
    }
    for (_, e) in &set.failed {
        print_errors(&e.lines())?;
    }
    out!("{} profiles ok, {} failed", set.profiles.len(), set.failed.len());
    Ok(set.failed.is_empty() && generic_ok)
}

/// Every error and warning of each file, in file order; `FILE: ok` for a file without errors.
fn profile_check(files: &[PathBuf]) -> io::Result<bool> {
    let mut all_ok = true;
    for file in files {
        match check_profile(file) {
            Ok(checked) => {
                for (is_error, d) in checked.in_file_order() {
                    if is_error {
                        err!("error: {d}");
                    } else {
                        err!("warning: {d}");
                    }
                }
                if checked.errors.is_empty() {
                    out!("{}: ok", file.display());
                } else {
                    all_ok = false;
                }
            }
            Err(e) => {
                all_ok = false;
                print_errors(&e.lines())?;
            }
        }
    }
    Ok(all_ok)
}

fn print_warnings(warnings: &[Diagnostic]) -> io::Result<()> {
    for w in warnings {
        err!("warning: {w}");
    }
    Ok(())
}

fn print_errors(lines: &[String]) -> io::Result<()> {
    for line in lines {
        err!("error: {line}");
    }
    Ok(())
}
