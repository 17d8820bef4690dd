#!/usr/bin/env bash
# The oz benchmark, in one command (not a test):
#
#   sudo bash bench/run.sh
#
# Builds release binaries, starts its own oz-daemon (temp socket, state, sandbox and log
# directories, its own oz.conf), measures launches through the daemon beside bubblewrap and
# firejail, launches with 0/50/100 sandboxes running, per-sandbox memory, and 1,000 `oz run`
# cycles with a leak and leftover check, and one TCP stream through a socket forwarder beside direct
# loopback and two socat relays (bench/forward.py); prints the tables and rewrites bench/BENCHMARKS.md
# (everything above its history marker; the optimisation history below it is kept). Takes the
# integration tests' host-wide lock, so it never runs beside them. Every figure is a median and p95 of repeated runs, all from one run.
#
# Environment: OZ_BENCH_RUNS (rounds per measurement, default 60), OZ_BENCH_CYCLES (default 1000),
# OZ_BENCH_LOADS (sandboxes running while launching, default "0 50 100"), OZ_BENCH_USER
# (default oz-test-a, created when missing), OZ_BENCH_NO_BUILD=1 (use target/release as is),
# OZ_BENCH_OUT (the report file, default bench/BENCHMARKS.md), OZ_BENCH_SETTLE_MS (pause before each
# timed command, default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (the daemon and the agent need it)" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
for tool in bwrap firejail python3 setpriv iperf3 socat; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool missing (bash scripts/deps.sh)" >&2; exit 2; }
done
if [ -z "${OZ_BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked -p oz-agent -p oz-supervisor -p oz-cli --bins
fi
PYTHONDONTWRITEBYTECODE=1 exec flock /tmp/oz-integration.lock python3 bench/bench.py target/release
