//! oz-agent: one privileged process per sandbox. `serve --fd N` is how the daemon drives it;
//! `standalone` builds and runs one sandbox directly (tests, benchmarks).

use clap::{Parser, Subcommand};
use oz_agent::agent::standalone::{self, StandaloneArgs, SETUP_FAILURE};
use std::os::fd::{FromRawFd, OwnedFd};

#[derive(Debug, Parser)]
#[command(name = "oz-agent", about = "builds and owns one oz sandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the daemon on an inherited socketpair end.
    Serve {
        /// The inherited descriptor of the daemon's socketpair.
        #[arg(long)]
        fd: i32,
    },
    /// Build one sandbox and run its program with this process's stdio; exit with its status
    /// (125 when the sandbox cannot be built).
    Standalone(StandaloneArgs),
    /// The sandbox's DNS forwarder (started by the agent with its listeners on fds 3 and 4).
    Dns {
        /// A resolver to forward to (tried in order).
        #[arg(long)]
        upstream: Vec<std::net::SocketAddr>,
    },
    /// Merge a seccomp training record (JSON on stdin) into a whitelist file; run by the agent
    /// with the user's credentials.
    #[command(hide = true)]
    TrainMerge { path: std::path::PathBuf },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { SETUP_FAILURE } else { 0 });
        }
    };
    match cli.command {
        Command::Serve { fd } => {
            if fd < 3 || nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                eprintln!("oz-agent: --fd {fd}: not an open descriptor above 2");
                std::process::exit(SETUP_FAILURE);
            }
            // SAFETY: the daemon handed us this descriptor; nothing else in the process owns it.
            let daemon = unsafe { OwnedFd::from_raw_fd(fd) };
            oz_agent::agent::serve::run(daemon)
        }
        Command::Dns { upstream } => {
            if let Err(e) = oz_agent::agent::dns::run(upstream) {
                eprintln!("oz-agent dns: {e}");
            }
            std::process::exit(1)
        }
        Command::TrainMerge { path } => match oz_agent::agent::seccomp::trainfile::merge_main(&path) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("oz-agent train-merge: {e}");
                std::process::exit(1);
            }
        },
        Command::Standalone(args) => match standalone::run(&args) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("oz-agent: {e}");
                std::process::exit(SETUP_FAILURE);
            }
        },
    }
}
