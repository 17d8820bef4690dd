//! oz-setup's desktop integration: wrap programs with dpkg-divert and a symlink to the `oz`
//! wrapper (`install`), undo it (`remove`), and show it (`status`).
//!
//! With the defaults (`divert_path` true, `divert_suffix` "unsafe") `/usr/bin/evince` is moved
//! to `/usr/bin-oz/evince.unsafe` and `/usr/bin/evince` becomes a symlink to
//! `<prefix_path>/bin/oz`. Running the diverted path still runs the program unsandboxed.

pub mod cli;
pub mod dpkg;
pub mod install;
pub mod rootdir;
pub mod status;
pub mod targets;

use anyhow::{bail, Result};
use clap::Args;
use install::{Installed, Removed};
use oz_profiles::Config;
use std::io::Write;
use targets::Target;

/// `install` and `remove` arguments.
#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// Profile name, or a program path of a profile
    #[arg(value_name = "NAME|PATH", required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<String>,
    /// install: every profile whose program is installed; remove: every diversion oz made
    #[arg(long)]
    pub all: bool,
    /// install: wrap even without the wrapper, replace what sits where the symlink belongs;
    /// remove: delete what sits where oz's symlink was
    #[arg(long)]
    pub force: bool,
}

/// `status` arguments.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Profile name or program path (default: every diversion oz made)
    #[arg(value_name = "NAME|PATH")]
    pub target: Option<String>,
}

fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("must run as root (it changes /usr and the dpkg diversion database)");
    }
    Ok(())
}

fn oz_diversions() -> Result<Vec<Target>> {
    let all = dpkg::all()?;
    let ours = all.into_iter().filter(|d| d.package.as_deref() == Some(dpkg::PACKAGE));
    Ok(ours.map(|d| Target { path: d.from, profile: None }).collect())
}

fn is_oz_diversion(p: &std::path::Path) -> bool {
    matches!(dpkg::of(p), Ok(Some(d)) if d.package.as_deref() == Some(dpkg::PACKAGE))
}

fn say(line: String) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// `oz-setup install`; whether everything asked for is wrapped.
pub fn install(config: &Config, args: &ChangeArgs) -> Result<bool> {
    require_root()?;
    let set = targets::profiles(config);
    let list = match &args.target {
        Some(t) => targets::resolve(t, config, &set, |_| false)?,
        None => targets::all(config, &set),
    };
    let mut ok = true;
    for t in list {
        let p = t.path.display();
        if args.all && !installed_or_wrapped(&t.path, config) {
            say(format!("{p}: skipped (not installed)"));
            continue;
        }
        match install::install(config, &t.path, args.force) {
            Ok(Installed::Wrapped { to, created_dir }) => {
                if let Some(d) = created_dir {
                    say(format!("created {}", d.display()));
                }
                say(format!("{p}: diverted to {}; {p} -> {}", to.display(), config.oz_wrapper().display()));
            }
            Ok(Installed::Already { to }) => say(format!("{p}: already wrapped (real binary at {})", to.display())),
            Ok(Installed::Repaired { to }) => say(format!(
                "{p}: symlink to {} restored (real binary at {})",
                config.oz_wrapper().display(),
                to.display()
            )),
            Err(e) => {
                ok = false;
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(ok)
}

fn installed_or_wrapped(path: &std::path::Path, config: &Config) -> bool {
    path.symlink_metadata().is_ok() || config.diverted_path(path).symlink_metadata().is_ok()
}

/// `oz-setup remove`; whether everything asked for is unwrapped.
pub fn remove(config: &Config, args: &ChangeArgs) -> Result<bool> {
    require_root()?;
    let list = match &args.target {
        Some(t) => targets::resolve(t, config, &targets::profiles(config), is_oz_diversion)?,
        None => oz_diversions()?,
    };
    if list.is_empty() {
        say("no program is wrapped by oz".into());
    }
    let mut ok = true;
    for t in list {
        let p = t.path.display();
        match install::remove(config, &t.path, args.force) {
            Ok(Removed::Restored { from, removed_dir }) => {
                say(format!("{p}: symlink removed; real binary moved back from {}", from.display()));
                if let Some(d) = removed_dir {
                    say(format!("removed empty {}", d.display()));
                }
            }
            Ok(Removed::NotWrapped) => say(format!("{p}: not wrapped by oz; nothing to do")),
            Err(e) => {
                ok = false;
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(ok)
}

/// `oz-setup status`; false when something oz made is broken.
pub fn status(config: &Config, args: &StatusArgs) -> Result<bool> {
    let list = match &args.target {
        Some(t) => targets::resolve(t, config, &targets::profiles(config), |_| true)?,
        None => oz_diversions()?,
    };
    if list.is_empty() {
        say("no program is wrapped by oz".into());
    }
    let mut ok = true;
    for t in list {
        let (line, fine) = status::describe(config, &t.path)?;
        ok &= fine;
        say(line);
    }
    Ok(ok)
}

/// `config check`: the generic seccomp blacklist (`<etc_prefix>/blacklist-generic.seccomp`)
/// loads, or is absent (the built-in default applies).
pub fn check_generic_blacklist(config: &Config) -> std::io::Result<bool> {
    use oz_profiles::seccomp::generic::{generic_blacklist, generic_blacklist_path};
    let path = generic_blacklist_path(&config.etc_prefix);
    match generic_blacklist(&config.etc_prefix) {
        Ok(_) if path.exists() => writeln!(std::io::stdout(), "{}: ok", path.display())?,
        Ok(_) => writeln!(std::io::stdout(), "{}: missing, using the built-in default", path.display())?,
        Err(e) => {
            writeln!(std::io::stderr(), "error: {e}")?;
            return Ok(false);
        }
    }
    Ok(true)
}
