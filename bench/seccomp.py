#!/usr/bin/env python3
"""Cost of a seccomp filter per syscall: 2M getppid calls, ns per call, as the sandbox user.

Run by bench/seccomp.sh (which builds release binaries and takes the integration lock):
native (no sandbox, no filter), oz with seccomp disabled (only the always-on hardening filter),
oz's default blacklist (enforced), a whitelist trained by oz on the same program (enforced),
and firejail --seccomp, all in one run. Each figure is the median of OZ_BENCH_SC_RUNS runs
(default 7) of the program's own timing of the loop (clock_gettime around it), so sandbox
start-up is not counted.
"""

import json
import os
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CALLS = int(os.environ.get("OZ_BENCH_SC_CALLS", "2000000"))
# Denied calls each go to the agent and back: fewer of them.
DENIED = int(os.environ.get("OZ_BENCH_SC_DENIED", "20000"))
RUNS = int(os.environ.get("OZ_BENCH_SC_RUNS", "7"))

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int nr = argc > 2 && strcmp(argv[2], "sysinfo") == 0 ? SYS_sysinfo : SYS_getppid;
    struct sysinfo si;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        syscall(nr, &si);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
    printf("NS_PER_CALL %.1f\n", ns);
    return 0;
}
"""


def ns_per_call(cmd):
    values = []
    for _ in range(RUNS):
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/")
        line = next((l for l in r.stdout.splitlines() if l.startswith("NS_PER_CALL ")), None)
        if r.returncode != 0 or line is None:
            bench.fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        values.append(float(line.split()[1]))
    return statistics.median(values), min(values)


def main():
    b = bench.Bench(sys.argv[1] if len(sys.argv) > 1 else os.path.join(bench.ROOT, "target", "release"))
    try:
        conf = b.standalone_conf
        src = os.path.join(b.ws, "getppid.c")
        prog = os.path.join(b.ws, "getppid-bench")
        with open(src, "w") as f:
            f.write(PROGRAM)
        subprocess.run(["cc", "-O2", "-o", prog, src], check=True)
        os.chmod(prog, 0o755)
        train_dir = os.path.join(b.ws, "train")
        os.makedirs(train_dir)
        os.chown(train_dir, b.uid, b.gid)
        trained = os.path.join(train_dir, "getppid.seccomp")
        deny = os.path.join(b.ws, "deny-sysinfo.seccomp")
        with open(deny, "w") as f:
            f.write("sysinfo: 1\n")
        base = {"path": prog, "networking": {"type": "none"}, "whitelist": [{"path": prog, "read_only": True}]}
        profiles = {
            "sc-disabled": {"mode": "disabled"},
            "sc-blacklist": {"mode": "blacklist", "enforce": True},
            "sc-train": {"mode": "train", "train_output": trained},
            "sc-trained": {"mode": "whitelist", "enforce": True, "whitelist": trained},
            "sc-deny": {"mode": "blacklist", "enforce": True, "blacklist": deny},
            "sc-audit": {"mode": "blacklist", "enforce": False, "blacklist": deny},
        }
        for name, seccomp in profiles.items():
            with open(f"{conf['profile_dir']}/{name}.json", "w") as f:
                json.dump(dict(base, name=name, seccomp=seccomp), f)

        def agent(profile, *args):
            return [os.path.join(b.bindir, "oz-agent"), "standalone", "--config", conf["path"], "--profile",
                    f"{conf['profile_dir']}/{profile}.json", "--uid", str(b.uid), "--", *args]

        # Training (every call goes through the agent, so with a short loop), then enforcing.
        r = subprocess.run(agent("sc-train", "1000"), capture_output=True, text=True, cwd="/")
        if r.returncode != 0 or not os.path.exists(trained):
            bench.fail(f"training failed:\n{r.stdout}\n{r.stderr}")
        cmds = {
            "native (no sandbox, no filter)": b.as_user + [prog, str(CALLS)],
            "oz, seccomp disabled (hardening filter only)": agent("sc-disabled", str(CALLS)),
            "oz, default blacklist (enforced)": agent("sc-blacklist", str(CALLS)),
            "oz, trained whitelist (enforced)": agent("sc-trained", str(CALLS)),
            "firejail --seccomp (noprofile)": b.as_user + ["firejail", "--quiet", "--noprofile", "--seccomp", prog,
                                                            str(CALLS)],
        }
        denied = {
            f"denied sysinfo, enforced (EPERM from the agent), {DENIED} calls": agent("sc-deny", str(DENIED), "sysinfo"),
            f"denied sysinfo, audit (the agent lets it run), {DENIED} calls": agent("sc-audit", str(DENIED), "sysinfo"),
        }
        print(f"# seccomp cost per call: {CALLS} getppid, median (min) of {RUNS} runs, ns per call")
        for name, cmd in cmds.items():
            med, low = ns_per_call(cmd)
            print(f"{name:48s} {med:8.1f} ({low:.1f})")
        print("# a denied call through user notification (each reported to the agent)")
        for name, cmd in denied.items():
            med, low = ns_per_call(cmd)
            print(f"{name:64s} {med:9.1f} ({low:.1f})")
        cmds.update(denied)
        print("\ncommands:")
        for cmd in cmds.values():
            print("  " + " ".join(shlex.quote(c) for c in cmd))
        rules = sum(1 for l in open(trained) if l.strip() and not l.startswith("#"))
        print(f"\ntrained whitelist: {rules} rules ({trained})")
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
