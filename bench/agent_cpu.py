#!/usr/bin/env python3
"""CPU time the daemon's children (agents and their inits) use per `oz run strict`, for several
builds in turn:

    sudo python3 bench/agent_cpu.py BINDIR [BINDIR ...]     # OZ_BENCH_RUNS (default 100)

Each build gets its own daemon as in bench/run.sh; after one warm-up run, RUNS runs of
`oz run strict` as the user, then the growth of the daemon's reaped-children CPU time
(/proc/PID/stat cutime + cstime) divided by RUNS. Clock ticks are 10 ms, hence the many runs.
Holds the integration tests' lock.
"""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

RUNS = int(os.environ.get("OZ_BENCH_RUNS", "100"))


def children_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def measure(bindir):
    b = B.Bench(bindir)
    try:
        b.start_daemon()
        run = b.oz_user("run", "strict")
        subprocess.run(run, env=b.env, cwd="/", stdout=subprocess.DEVNULL, check=True)
        before = children_cpu(b.daemon.pid)
        for _ in range(RUNS):
            B.settle()
            subprocess.run(run, env=b.env, cwd="/", stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.5)
        per = (children_cpu(b.daemon.pid) - before) / RUNS * 1000
        print(f"{bindir}: agents and inits, CPU per oz run: {per:.2f} ms ({RUNS} runs)", flush=True)
    finally:
        b.cleanup()


if __name__ == "__main__":
    B.each_build(measure, __doc__)
