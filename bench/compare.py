#!/usr/bin/env python3
"""Before/after of a change: `oz run strict` of several builds in the same rounds, beside bwrap.

    sudo python3 bench/compare.py BINDIR_BEFORE BINDIR_AFTER [...]     # OZ_BENCH_RUNS (default 40)
    sudo OZ_STRICT_PATCH='{"seccomp": {"mode": "disabled"}}' python3 bench/compare.py ...  # a variant

Each BINDIR holds release `oz`, `oz-daemon` and `oz-agent` (e.g. target/release of a checkout of
the commit before the change, and of this one). Every build gets its own daemon and workspace
as in bench/run.sh; every round runs each build's `oz run strict` once, then bwrap desktop-like,
`oz list` and `setpriv /bin/true`, so a change in the machine's load meets all of them alike.
Prints the median and p95 of each and its ratio to bwrap. Takes the integration tests' lock.
"""

import fcntl
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

RUNS = int(os.environ.get("OZ_BENCH_RUNS", "40"))
# Keys merged into the `strict` profile, to compare builds on a variant (seccomp off, say).
B.STRICT.update(json.loads(os.environ.get("OZ_STRICT_PATCH", "{}")))


def main():
    dirs = sys.argv[1:]
    if not dirs:
        B.fail("usage: compare.py BINDIR [BINDIR...]")
    with open("/tmp/oz-integration.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        benches = [B.Bench(d) for d in dirs]
        try:
            for b in benches:
                b.start_daemon()
            first = benches[0]
            cmds = {f"oz run strict, {d}": (b, b.oz_user("run", "strict")) for d, b in zip(dirs, benches)}
            cmds["bwrap desktop-like"] = (first, first.as_user + ["bwrap"] + B.bwrap_args())
            cmds["oz list"] = (first, first.oz_user("list"))
            cmds["setpriv /bin/true"] = (first, first.as_user + ["/bin/true"])
            times = {name: [] for name in cmds}
            for i in range(3 + RUNS):
                for name, (b, cmd) in cmds.items():
                    B.settle()
                    t = time.perf_counter()
                    subprocess.run(cmd, env=b.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   check=True)
                    if i >= 3:
                        times[name].append(time.perf_counter() - t)
        finally:
            for b in benches:
                try:
                    b.cleanup()
                except SystemExit:
                    pass
    stats = {name: B.stats_ms(t) for name, t in times.items()}
    bwrap = stats["bwrap desktop-like"][0]
    print(f"{RUNS} rounds, load average {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
    print("| | median ms | p95 ms | x bwrap |\n|---|---:|---:|---:|")
    for name, (median, p95) in stats.items():
        print("| %s | %.2f | %.2f | %.2f |" % (name, median, p95, median / bwrap))


if __name__ == "__main__":
    main()
