//! `oz`: the command-line client of oz-daemon, and the wrapper that stands in for sandboxed
//! applications when invoked under their name (a symlink such as `/usr/bin/evince -> oz`).

fn main() -> std::process::ExitCode {
    oz_cli::oz::main()
}
