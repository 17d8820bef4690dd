//! Control runs: the probes outside any sandbox, to show each one can report an escape.
//!
//! - [`as_user`]: as the unprivileged test user, straight on the host.
//! - [`as_root_scratch`]: as root, in a private mount and UTS namespace, chrooted into a copy of
//!   the host whose `/`, `/usr`, `/etc` and `/root` are writable overlays on a tmpfs: the
//!   privileged probes succeed there without changing the host (writes land in the tmpfs, the
//!   hostname is private, and the probes only open device and /proc files, never write them).

use crate::run::{self, Opts, Output};
use crate::users::TestUser;
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// Builds the scratch root at `$1` and execs the rest of the arguments chrooted into it.
const SCRATCH_ROOT: &str = r#"
set -eu
T=$1; shift
mount -t tmpfs -o mode=755 oz-control "$T"
mkdir "$T/.ovl"
for d in /*; do
    n=${d#/}
    if [ -L "$d" ]; then
        ln -s "$(readlink "$d")" "$T/$n"
    elif [ ! -d "$d" ]; then
        continue
    elif [ "$n" = usr ] || [ "$n" = etc ] || [ "$n" = root ]; then
        mkdir -p "$T/.ovl/$n-up" "$T/.ovl/$n-work" "$T/$n"
        mount -t overlay overlay -o "lowerdir=$d,upperdir=$T/.ovl/$n-up,workdir=$T/.ovl/$n-work" "$T/$n"
    else
        mkdir -p "$T/$n"
        mount --rbind "$d" "$T/$n"
    fi
done
mount -t tmpfs -o mode=1777 oz-control-shm "$T/dev/shm"
exec chroot "$T" "$@"
"#;

/// Runs `program args` as the test user on the host.
pub fn as_user(user: &TestUser, program: &Path, args: &[String], env: &[(&str, &str)], opts: Opts) -> Result<Output> {
    let mut c = user.command(program);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run::run(c, opts)
}

/// Runs `program args` as root in the scratch root described above; `scratch` is an empty
/// directory to mount it on.
pub fn as_root_scratch(
    scratch: &Path,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    opts: Opts,
) -> Result<Output> {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--uts", "--propagation", "private", "/bin/sh", "-c", SCRATCH_ROOT, "sh"]);
    c.arg(scratch).arg(program).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run::run(c, opts)
}
