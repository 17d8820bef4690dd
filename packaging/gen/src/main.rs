//! oz-gen-assets OUTDIR: writes what the Debian package ships beside the binaries, generated
//! from the code so it cannot drift from it:
//! - `man/oz.1`, `man/oz-setup.8`, `man/oz-daemon.8` (clap_mangen, from the clap definitions);
//! - `completions/{bash,zsh,fish}/...` for the three commands (clap_complete);
//! - `blacklist-generic.seccomp`: oz's built-in default blacklist, for /etc/oz to edit.

// oz-daemon is a binary crate: its self-contained command-line file is included as a module.
#[path = "../../../supervisor/src/args.rs"]
mod daemon_args;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn commands() -> Vec<(clap::Command, &'static str)> {
    vec![(oz_cli::oz::command(), "1"), (oz_cli::setup::cli::command(), "8"), (daemon_args::Args::command(), "8")]
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// A page for the command and one for each subcommand (`oz-setup-install.8`), which the
/// command's page refers to.
fn man_pages(cmd: &clap::Command, section: &'static str, out: &Path) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).section(section).render(&mut buf).context("render man page")?;
    write(&out.join("man").join(format!("{name}.{section}")), &buf)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        man_pages(sub, section, out)?;
    }
    Ok(())
}

fn completions(cmd: &clap::Command, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
        write(&out.join("completions").join(dir).join(file), &buf)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let out: PathBuf = std::env::args_os().nth(1).context("usage: oz-gen-assets OUTDIR")?.into();
    for (mut cmd, section) in commands() {
        cmd.build();
        man_pages(&cmd, section, &out)?;
        completions(&cmd, &out)?;
    }
    write(&out.join("blacklist-generic.seccomp"), oz_profiles::seccomp::default_policy::DEFAULT_BLACKLIST.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definitions_are_consistent() {
        for (cmd, _) in commands() {
            cmd.debug_assert();
        }
    }
}
