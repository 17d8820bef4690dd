#!/usr/bin/env python3
"""Where the time of `oz run` goes: a phase table from `perf trace` timestamps.

    sudo python3 bench/trace.py [RUNS [SANDBOXES_RUNNING]]     # defaults 20 and 0

Uses the release binaries of target/release (build them with bench/run.sh first), its own
daemon and workspace as bench/run.sh does, and the integration tests' lock. `perf trace -a`
records a handful of syscalls (execve, clone, sendmsg, recvmsg, connect, pivot_root, ...)
host-wide while `oz run strict` runs RUNS times; each phase is the time between two of them,
matched by process (client, daemon, agent, init, program). Median and p95 in milliseconds.
"""

import fcntl
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

SYSCALLS = "execve,clone,clone3,sendmsg,recvmsg,pivot_root,exit_group,connect,accept4"
LINE = re.compile(r'\s*([\d.]+) \(\s*([\d.]*)\s*(?:ms)?\): (.+?)/(\d+) (.*)')


def record(runs, load, out):
    b = B.Bench(os.environ.get("OZ_BIN_DIR", os.path.join(B.ROOT, "target", "release")))
    try:
        b.start_daemon()
        B.launch_sleepers(b, load, [])
        time.sleep(0.5)
        perf = subprocess.Popen(["perf", "trace", "-a", "-e", SYSCALLS, "-o", out])
        time.sleep(2)
        for _ in range(runs):
            subprocess.run(b.oz_user("run", "strict"), env=b.env, cwd="/", stdout=subprocess.DEVNULL, check=True)
            time.sleep(0.2)
        time.sleep(0.5)
        perf.terminate()
        perf.wait()
    finally:
        b.cleanup()


def events(path):
    out = []
    for line in open(path):
        m = LINE.match(line)
        if not m:
            continue
        rest = m[5]
        cont = "[continued]" in rest
        if "..." in rest and not cont:
            continue  # the call's end comes later as a [continued] line
        name = re.search(r'(\w+)\(', rest.replace("[continued]:", ""))
        ret = re.search(r'= (-?\d+)', rest)
        t = float(m[1])
        out.append(dict(t=t, end=t + (float(m[2]) if m[2] else 0.0), comm=m[3], pid=int(m[4]),
                        sc=name[1] if name else "", rest=rest, ret=int(ret[1]) if ret else 0))
    return sorted(out, key=lambda e: e["t"])


def first(evs, pred, after=0.0):
    return next(e for e in evs if e["t"] >= after and pred(e))


def phases(run, all_evs):
    daemon = lambda e: e["comm"].startswith("oz-daemon")  # noqa: E731
    c, t0 = run[0]["pid"], run[0]["t"]
    ozx = first(run, lambda e: e["pid"] == c and e["comm"] == "oz" and e["sc"] == "execve")
    conn = first(run, lambda e: e["pid"] == c and e["sc"] == "connect" and e["ret"] == 0)
    sent = [e for e in run if e["pid"] == c and e["sc"] == "sendmsg"][1]
    got = first(run, lambda e: daemon(e) and e["sc"] == "recvmsg" and e["ret"] > 200, sent["t"] - 1)
    # The agent is the process that receives the launch spec: one the daemon spawned ahead of
    # this launch (in an earlier run's window) or, when none was waiting, just now.
    specr = first(run, lambda e: not daemon(e) and e["pid"] != c and e["sc"] == "recvmsg" and e["ret"] > 500
                  and "PEEK" not in e["rest"], got["t"])
    a = specr["pid"]
    fork = next((e for e in all_evs if daemon(e) and e["sc"] == "clone" and e["ret"] == a), None)
    # The daemon sends the spec right behind its hello, without waiting for the agent's.
    spec = first(run, lambda e: daemon(e) and e["sc"] == "sendmsg" and e["ret"] > 500, got["t"])
    clone = first(run, lambda e: e["pid"] == a and e["sc"] == "clone" and "NEWPID" in e["rest"])
    pivot = first(run, lambda e: e["sc"] == "pivot_root", clone["t"])
    exe = first(run, lambda e: e["comm"] == "true" and e["sc"] == "execve", pivot["t"])
    init_ready = first(run, lambda e: e["pid"] == clone["ret"] and e["sc"] == "sendmsg", exe["t"])
    ready = first(run, lambda e: e["pid"] == a and e["sc"] == "sendmsg" and "fd: 3," in e["rest"], init_ready["t"])
    launched = first(run, lambda e: daemon(e) and e["sc"] == "sendmsg" and e["pid"] != a, ready["t"])
    end = [e for e in run if e["pid"] == c and e["sc"] == "exit_group"][-1]
    return {
        "harness: setpriv (user lookup) until oz exec": ozx["t"] - t0,
        "client: oz start-up until connected": conn["end"] - ozx["t"],
        "client<->daemon: hello round trip, Launch sent": sent["end"] - conn["end"],
        "daemon: Launch received -> hello and spec sent (claim; fork, exec if none waits)": spec["end"] - sent["end"],
        "  of which the agent was spawned in this launch (0/1)": float(fork is not None and fork["t"] > got["t"]),
        "agent: spec sent -> received": specr["end"] - spec["end"],
        "agent: spec received -> init cloned (user, plan, cgroup)": clone["end"] - specr["end"],
        "init: clone -> pivot_root (root filesystem build)": pivot["end"] - clone["end"],
        "init: pivot_root -> exec program (landlock, seccomp, caps)": exe["t"] - pivot["end"],
        "init: exec -> Ready sent to agent": init_ready["end"] - exe["t"],
        "agent: Ready from init -> Ready to daemon (record, rendezvous)": ready["end"] - init_ready["end"],
        "daemon: Ready -> Launched sent to client": launched["end"] - ready["end"],
        "after Launched: program exit, ProgramExited, client exit": end["t"] - launched["end"],
        "total, setpriv exec -> client exit (perf trace running)": end["t"] - t0,
        "the daemon's fork of the agent (clone syscall)": (fork["end"] - fork["t"]) if fork else float("nan"),
    }


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    load = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    with open("/tmp/oz-integration.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.NamedTemporaryFile(prefix="oz-trace-", suffix=".txt") as out:
            record(runs, load, out.name)
            evs = events(out.name)
    starts = [i for i, e in enumerate(evs) if e["comm"] == "setpriv" and e["sc"] == "execve"]
    table = []
    for k, i in enumerate(starts):
        try:
            table.append(phases(evs[i: starts[k + 1] if k + 1 < len(starts) else len(evs)], evs))
        except (StopIteration, IndexError):
            pass  # a run whose events perf lost
    if not table:
        B.fail("no run could be matched in the trace")
    print(f"`oz run strict` with {load} sandboxes running: {len(table)} of {runs} runs matched\n")
    print("| phase | median ms | p95 ms |\n|---|---:|---:|")
    for key in table[0]:
        v = sorted(p[key] for p in table if p[key] == p[key])  # NaN: not seen in the trace
        if not v:
            continue
        print("| %s | %.2f | %.2f |" % (key, statistics.median(v), v[max(0, -(-len(v) * 95 // 100) - 1)]))


if __name__ == "__main__":
    main()
