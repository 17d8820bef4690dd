#!/usr/bin/env python3
"""Throughput of one TCP stream through a socket forwarder, beside direct loopback and the
original Oz's design, all in one run (not a test):

    sudo python3 bench/forward.py target/release [OTHER_BINDIR...]

- direct: iperf3 client and server on the host's loopback;
- oz forwarder: the client inside a sandbox (`oz-agent standalone`, networking empty, one
  `client` tcp forwarder), the server on the host: one hop, spliced by the agent;
- two relays (the original's design): a relay on the host (unix socket -> TCP) and one inside
  the sandbox's network namespace (TCP -> that unix socket), two socat processes.

Each round measures them in turn (iperf3 -t SECONDS); the medians, 95th percentiles and the
ratios of the medians to direct loopback are printed, with the CPU of the relay and of relay
plus iperf3's client and server. Every further BINDIR (another build of oz-agent) adds an
"oz forwarder" row measured in the same rounds, the builds taking turns to go first, so that
two builds are compared under the same load. The run holds the integration tests' lock
(/tmp/oz-integration.lock): their leftover checks would count its sandboxes.
Environment: OZ_FWD_ROUNDS (default 5), OZ_FWD_SECONDS (default 3), OZ_BENCH_USER (default
oz-test-a). Needs iperf3 and socat (scripts/deps.sh).
"""

import fcntl
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(os.environ.get("OZ_FWD_ROUNDS", "5"))
SECONDS = int(os.environ.get("OZ_FWD_SECONDS", "3"))
USER = os.environ.get("OZ_BENCH_USER", "oz-test-a")
SANDBOX_FWD_PORT = 7001
SANDBOX_RELAY_PORT = 7002


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def init_of(agent_pid):
    """The sandbox init: the agent's child."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with open(f"/proc/{agent_pid}/task/{agent_pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("forward.py: the sandbox init did not appear")


def wait_listening(init, port):
    """Wait for a TCP listener on `port`, in the sandbox of `init` (None: on the host)."""
    deadline = time.time() + 10
    ns = ["nsenter", "-t", str(init), "-n"] if init else []
    while time.time() < deadline:
        out = subprocess.run(ns + ["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    sys.exit(f"forward.py: nothing listens on {port} in the sandbox")


def cpu_seconds(pids):
    """User + system CPU of these processes and of their reaped children."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])
    return total / hz


def reaped_cpu_seconds():
    """User + system CPU of this script's reaped children (the iperf3 clients)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def iperf(port, init=None):
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECONDS), "-J"]
    if init:
        cmd = ["nsenter", "-t", str(init), "-n"] + cmd
    # The server takes one test at a time and may still be closing the previous one.
    for _ in range(5):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30)
        try:
            return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError):
            time.sleep(0.5)
    sys.exit(f"forward.py: {' '.join(cmd)}: {out.stdout[-400:]} {out.stderr[-400:]}")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


DIRECT = "direct loopback"
OZ = "oz forwarder (one hop, splice)"
RELAYS = "two relays (original: socat + unix + socat)"


def test_user():
    try:
        return pwd.getpwnam(USER).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        return pwd.getpwnam(USER).pw_uid


def start_agent(ws, bindir, uid, port):
    """A standalone sandbox of `bindir`'s oz-agent with one client tcp forwarder to `port`."""
    os.makedirs(ws)
    conf = {k: f"{ws}/{k}" for k in ("profile_dir", "sandbox_path", "state_dir", "log_dir")}
    for d in conf.values():
        os.makedirs(d)
    conf.update({"socket_path": f"{ws}/control.sock", "agent_path": os.path.join(bindir, "oz-agent")})
    with open(f"{ws}/oz.conf", "w") as f:
        json.dump(conf, f)
    prof = {"name": "fwd", "path": "/bin/sleep", "networking": {"type": "empty", "sockets": [
        {"type": "client", "proto": "tcp", "port": SANDBOX_FWD_PORT, "dport": port}]}}
    with open(f"{conf['profile_dir']}/fwd.json", "w") as f:
        json.dump(prof, f)
    return subprocess.Popen([os.path.join(bindir, "oz-agent"), "standalone", "--config", f"{ws}/oz.conf",
                             "--profile", f"{conf['profile_dir']}/fwd.json", "--uid", str(uid), "--", "3600"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def oz_mode(i, bindir):
    return OZ if i == 0 else f"{OZ[:12]} {bindir}"


def measure(bindirs, uid, rounds=ROUNDS):
    """{mode: (Gbit/s, relay CPU, CPU of relay + iperf3 client and server; per round, in cores)}:
    direct, one oz forwarder row per build in `bindirs`, the two relays."""
    for tool in ("iperf3", "socat", "nsenter", "ss"):
        if not shutil.which(tool):
            sys.exit(f"forward.py: {tool} missing (bash scripts/deps.sh)")
    ws = tempfile.mkdtemp(prefix="oz-fwd-bench-")
    os.chmod(ws, 0o755)
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(["iperf3", "-s", "-p", str(port)], stdout=subprocess.DEVNULL))
        wait_listening(None, port)
        agents = []
        for i, bindir in enumerate(bindirs):
            agent = start_agent(f"{ws}/agent{i}", bindir, uid, port)
            procs.append(agent)
            agents.append((agent, init_of(agent.pid)))
        init = agents[0][1]
        relay_sock = f"{ws}/relay.sock"
        quiet = {"stderr": subprocess.DEVNULL}
        relays = [subprocess.Popen(["socat", f"UNIX-LISTEN:{relay_sock},fork", f"TCP:127.0.0.1:{port}"], **quiet),
                  subprocess.Popen(["nsenter", "-t", str(init), "-n", "socat",
                                    f"TCP-LISTEN:{SANDBOX_RELAY_PORT},fork,reuseaddr,bind=127.0.0.1",
                                    f"UNIX-CONNECT:{relay_sock}"], **quiet)]
        procs.extend(relays)
        for _, agent_init in agents:
            wait_listening(agent_init, SANDBOX_FWD_PORT)
        wait_listening(init, SANDBOX_RELAY_PORT)
        # What runs, and the relay processes whose CPU time is counted.
        oz_runs = [(oz_mode(i, b), (lambda n=n: iperf(SANDBOX_FWD_PORT, n)), [a.pid])
                   for i, (b, (a, n)) in enumerate(zip(bindirs, agents))]
        res = {m: ([], [], []) for m in [DIRECT] + [m for m, _, _ in oz_runs] + [RELAYS]}
        server = procs[0].pid
        for r in range(rounds):
            # The builds take turns going first.
            turn = oz_runs[r % len(oz_runs):] + oz_runs[:r % len(oz_runs)]
            runs = [(DIRECT, lambda: iperf(port), [])] + turn + \
                [(RELAYS, lambda: iperf(SANDBOX_RELAY_PORT, init), [p.pid for p in relays])]
            for m, run, counted in runs:
                before, others = cpu_seconds(counted), cpu_seconds([server]) + reaped_cpu_seconds()
                res[m][0].append(run())
                relay = (cpu_seconds(counted) - before) / SECONDS
                res[m][1].append(relay)
                res[m][2].append(relay + (cpu_seconds([server]) + reaped_cpu_seconds() - others) / SECONDS)
        return res
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(ws, ignore_errors=True)


def p95(xs):
    return statistics.quantiles(xs, n=20, method="inclusive")[18] if len(xs) > 1 else xs[0]


def main():
    bindirs = [os.path.abspath(b) for b in (sys.argv[1:] or ["target/release"])]
    # The integration tests' lock: their leftover checks would count these sandboxes.
    lock = open("/tmp/oz-integration.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    before = loadavg()
    res = measure(bindirs, test_user())
    direct = statistics.median(res[DIRECT][0])
    print(f"One TCP stream, iperf3 -t {SECONDS}, {ROUNDS} rounds (Gbit/s; CPU in cores, medians; all CPU:"
          " relay + iperf3 client and server):")
    print(f"  {'':46s} {'median':>7s} {'p95':>7s}")
    for m, (gbits, cpu, total) in res.items():
        med = statistics.median(gbits)
        print(f"  {m:46s} {med:7.2f} {p95(gbits):7.2f}  ({med / direct:.2f} of direct)"
              f"  relay CPU {statistics.median(cpu):.2f}  all CPU {statistics.median(total):.2f}"
              "  runs: " + " ".join(f"{x:.2f}" for x in gbits))
    print(f"  ({os.cpu_count()} CPUs; load average before the run: {before}, after: {loadavg()})")


if __name__ == "__main__":
    main()
