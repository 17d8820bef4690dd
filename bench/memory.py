#!/usr/bin/env python3
"""Before/after of a change: per-sandbox memory (agent + init RSS and PSS) of several builds.

    sudo python3 bench/memory.py BINDIR [BINDIR ...]     # OZ_BENCH_SLEEPERS (default 5)

For each build in turn, starts its own daemon as bench/run.sh does, launches sleeping
sandboxes and prints the medians over them, in MB. Holds the integration tests' lock.
"""

import os
import statistics
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

SLEEPERS = int(os.environ.get("OZ_BENCH_SLEEPERS", "5"))


def measure(bindir):
    b = B.Bench(bindir)
    try:
        b.start_daemon()
        B.launch_sleepers(b, SLEEPERS, [])
        rows = [(B.rss_pss_kb(s["agent_pid"]), B.rss_pss_kb(s["init_pid"])) for s in b.sandboxes()
                if s["profile"] == B.SLEEPER["name"]]
    finally:
        b.cleanup()

    def med(f):
        return statistics.median(f(a, i) for a, i in rows) / 1024

    size = os.path.getsize(os.path.join(bindir, "oz-agent")) / 1e6
    print("%-32s agent RSS %.2f PSS %.2f | init RSS %.2f PSS %.2f | both RSS %.2f PSS %.2f | oz-agent %.1f MB" % (
        bindir, med(lambda a, i: a[0]), med(lambda a, i: a[1]), med(lambda a, i: i[0]), med(lambda a, i: i[1]),
        med(lambda a, i: a[0] + i[0]), med(lambda a, i: a[1] + i[1]), size), flush=True)


if __name__ == "__main__":
    B.each_build(measure, __doc__)
