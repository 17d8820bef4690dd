#!/usr/bin/env bash
# Seccomp cost per syscall, in one command (not a test):
#
#   sudo bash bench/seccomp.sh
#
# Builds release binaries, then measures 2M getppid calls (ns per call) natively, under oz
# with seccomp disabled, the default blacklist and a whitelist oz trains on the same program,
# and under firejail --seccomp, in one run; then the cost of a denied call, which goes to the
# agent through user notification (enforced: EPERM; audit: the call runs). Takes the
# integration tests' lock. Environment: OZ_BENCH_SC_CALLS (default 2000000), OZ_BENCH_SC_DENIED
# (default 20000), OZ_BENCH_SC_RUNS (default 7), OZ_BENCH_USER, OZ_BENCH_NO_BUILD=1 (use the
# binaries as they are), OZ_BENCH_BINDIR (default target/release; the getppid figures do not
# depend on it: the loop is compiled C and getppid never reaches the agent; denied calls do).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/seccomp.sh: run as root (the agent needs it)" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
for tool in firejail python3 setpriv cc; do
  command -v "$tool" >/dev/null || { echo "bench/seccomp.sh: $tool missing (bash scripts/deps.sh)" >&2; exit 2; }
done
if [ -z "${OZ_BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked -p oz-agent -p oz-supervisor -p oz-cli --bins
fi
PYTHONDONTWRITEBYTECODE=1 exec flock /tmp/oz-integration.lock python3 bench/seccomp.py "${OZ_BENCH_BINDIR:-target/release}"
