//! The command line, declared with clap derive.

use clap::{Parser, Subcommand};
use oz_wire::msg::{KillTarget, ProfileRef};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Wrapper mode: invoked under any name other than `oz` (a symlink such as /usr/bin/evince -> oz),
oz launches the profile whose `path` or `paths` names that executable, with the arguments given;
existing files and file:// URIs among them are made absolute so the profile's allow_files can
whitelist them. A symlink located elsewhere (~/bin/evince -> oz) launches the one profile whose
`path` has the same basename.

The daemon socket is $OZ_SOCKET, else /run/oz/control.sock.";

#[derive(Debug, Parser)]
#[command(name = "oz", version, about = "Run desktop applications in oz sandboxes", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the profiles the daemon knows (index, name, program)
    Profiles {
        /// Print a JSON array of {index, name, path, installed}
        #[arg(long)]
        json: bool,
    },
    /// Start a program in its sandbox and return once it runs; prints the sandbox id
    Launch {
        /// Build the sandbox without starting the program
        #[arg(short = 'n', long)]
        noexec: bool,
        /// A new sandbox with nothing of your home in it: what the program writes there is gone
        /// when the sandbox ends (needs oz.conf enable_ephemerals)
        #[arg(short = 'e', long)]
        ephemeral: bool,
        /// Print {"id", "init_pid", "reused_existing"} as JSON
        #[arg(long)]
        json: bool,
        /// Profile name or index (see `oz profiles`)
        profile: String,
        /// Arguments for the program (after `--` when they start with `-`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a program in its sandbox attached to this terminal; exits with its status
    /// (128 + signal when it was killed)
    Run {
        /// Profile name or index (see `oz profiles`)
        profile: String,
        /// Arguments for the program (after `--` when they start with `-`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List your running sandboxes (root: all)
    List {
        /// Print a JSON array of {id, profile, uid, user, init_pid, agent_pid, state, started_at, mounts}
        #[arg(long)]
        json: bool,
    },
    /// Stop a sandbox, or all of yours with `all`
    Kill {
        /// Sandbox id, or `all`
        #[arg(value_parser = parse_kill_target)]
        target: KillTarget,
    },
    /// Restart the Xpra client of a sandbox (its window on your display), or of all yours
    Relaunchxpra {
        /// Sandbox id, or `all`
        #[arg(value_parser = parse_kill_target)]
        target: KillTarget,
    },
    /// Open an interactive shell inside a sandbox, as you
    Shell {
        /// Sandbox id
        id: u64,
    },
    /// Show daemon and sandbox log records
    Logs {
        /// Keep printing new records as they arrive
        #[arg(short, long)]
        follow: bool,
        /// Only records of this sandbox
        #[arg(short, long, value_name = "ID")]
        sandbox: Option<u64>,
        /// At most this many buffered records
        #[arg(short = 'n', long)]
        count: Option<u32>,
        /// One JSON object per line: {ts, level, sandbox, profile, message}
        #[arg(long)]
        json: bool,
    },
    /// Make files from your home appear inside a running sandbox
    Mount {
        /// Sandbox id
        id: u64,
        /// Mount read-only
        #[arg(short, long)]
        readonly: bool,
        /// Files or directories (relative paths are taken from the current directory)
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Explain the seccomp denials of a running or recently ended sandbox, grouped by the
    /// rule that denied them, with a policy line that would allow each
    Why {
        /// Sandbox id
        id: u64,
        /// Print {sandbox, total, denials: [...], hints: [...]} as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a file mounted with `oz mount` from a running sandbox
    Umount {
        /// Sandbox id
        id: u64,
        /// The mounted path (relative paths are taken from the current directory)
        path: PathBuf,
    },
    /// Open an external forwarder of a sandbox: prints a unix socket on the host (yours,
    /// mode 0600) that reaches PORT on the sandbox's loopback
    Forward {
        /// Sandbox id
        id: u64,
        /// The forwarder's name in the profile's `external_forwarders`
        name: String,
        /// Port inside the sandbox (default: the forwarder's `targetport`)
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
    },
    /// List the forwarders of a sandbox (profile sockets and external ones)
    Forwarders {
        /// Sandbox id
        id: u64,
        /// A JSON array of {name, listen, target, state}
        #[arg(long)]
        json: bool,
    },
}

fn parse_kill_target(s: &str) -> Result<KillTarget, String> {
    if s == "all" {
        return Ok(KillTarget::All);
    }
    s.parse().map(KillTarget::Id).map_err(|_| format!("expected a sandbox id or `all`, got {s:?}"))
}

/// A profile named on the command line: all digits is an index, anything else a name.
pub fn profile_ref(s: &str) -> ProfileRef {
    match s.parse::<u32>() {
        Ok(i) if !s.starts_with('+') => ProfileRef::Index(i),
        _ => ProfileRef::Name(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn launch_takes_args_after_double_dash() {
        let cli = Cli::try_parse_from(["oz", "launch", "-n", "sleep", "--", "-x", "5"]).unwrap();
        match cli.command {
            Command::Launch { noexec, profile, args, .. } => {
                assert!(noexec);
                assert_eq!(profile, "sleep");
                assert_eq!(args, ["-x", "5"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["oz", "launch", "--ephemeral", "sleep"]).unwrap();
        assert!(matches!(cli.command, Command::Launch { ephemeral: true, noexec: false, .. }));
        let cli = Cli::try_parse_from(["oz", "run", "env", "a", "b"]).unwrap();
        assert!(matches!(cli.command, Command::Run { args, .. } if args == ["a", "b"]));
    }

    #[test]
    fn kill_target_and_profile_ref() {
        let cli = Cli::try_parse_from(["oz", "kill", "all"]).unwrap();
        assert!(matches!(cli.command, Command::Kill { target: KillTarget::All }));
        let cli = Cli::try_parse_from(["oz", "kill", "12"]).unwrap();
        assert!(matches!(cli.command, Command::Kill { target: KillTarget::Id(12) }));
        assert!(Cli::try_parse_from(["oz", "kill", "x"]).is_err());
        assert_eq!(profile_ref("3"), ProfileRef::Index(3));
        assert_eq!(profile_ref("evince"), ProfileRef::Name("evince".into()));
        assert_eq!(profile_ref("+3"), ProfileRef::Name("+3".into()));
    }

    #[test]
    fn mount_needs_a_path() {
        assert!(Cli::try_parse_from(["oz", "mount", "1"]).is_err());
        let cli = Cli::try_parse_from(["oz", "mount", "1", "--readonly", "a", "b"]).unwrap();
        assert!(matches!(cli.command, Command::Mount { readonly: true, ref paths, .. } if paths.len() == 2));
    }
}
