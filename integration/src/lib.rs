//! Test harness for oz's end-to-end and escape tests (run as root), and the probes `oz-probe`
//! runs inside sandboxes.
//!
//! - [`bins`]: where the built binaries are;
//! - [`users`]: the unprivileged test users;
//! - [`workspace`]: per-test oz.conf, profiles and state directories;
//! - [`run`]: running children with a timeout, a pty, a leaked fd;
//! - [`pty`]: driving a child interactively on a pty (input, resizes);
//! - [`mod@env`]: [`env::TestEnv`], one per test, with the leftover guard;
//! - [`leftovers`]: what a sandbox may not leave behind;
//! - [`serial`]: one sandbox-building test at a time on the host;
//! - [`control`]: running probes unsandboxed (as the user, or as root with the host made
//!   writable in a throwaway mount namespace);
//! - [`probes`]: the escape probes.
//!
//! Running: as root, build the binaries the tests drive, then the tests (oz-probe is built by
//! the test run itself):
//!
//! ```text
//! cargo build -p oz-agent -p oz-supervisor -p oz-cli
//! cargo test -p oz-integration
//! cargo test -p oz-integration --test escape -- --nocapture   # show every probe's verdict
//! ```
//!
//! Binaries are looked up in `$OZ_BIN_DIR`, then beside the test executable (`target/debug`).

pub mod bins;
pub mod control;
pub mod env;
pub mod leftovers;
pub mod probes;
pub mod pty;
pub mod run;
pub mod serial;
pub mod users;
pub mod workspace;
