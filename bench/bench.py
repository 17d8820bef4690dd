#!/usr/bin/env python3
"""The oz benchmark: run by bench/run.sh (which builds and takes the integration lock).

Layout: a `Bench` owns the workspace, the daemon and the sandbox user; each section is a
function `section_*(b) -> Section` listed in SECTIONS, returning rows of figures. To add a
measurement (X11 time to first window, forwarder throughput, seccomp cost per syscall), write
one more section function and append it to SECTIONS; the table and the report follow.
"""

import fcntl
import glob
import json
import math
import os
import pwd
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("OZ_BENCH_RUNS", "60"))
CYCLES = int(os.environ.get("OZ_BENCH_CYCLES", "1000"))
LOADS = [int(x) for x in os.environ.get("OZ_BENCH_LOADS", "0 50 100").split()]
USER = os.environ.get("OZ_BENCH_USER", "oz-test-a")
OUT = os.environ.get("OZ_BENCH_OUT", os.path.join(ROOT, "bench", "BENCHMARKS.md"))
HISTORY_MARKER = "<!-- history: kept across runs, everything above is rewritten by bench/run.sh -->"

STRICT = {
    "name": "strict", "path": "/bin/true", "networking": {"type": "empty"},
    "seccomp": {"mode": "blacklist", "enforce": True}, "landlock": True,
    "whitelist": [], "blacklist": [],
}
SLEEPER = dict(STRICT, name="sleeper", path="/bin/sleep", multi=True)


def each_build(measure, usage):
    """The main of a script that measures each build named on its command line in turn
    (`measure(bindir)`), holding the integration tests' lock (their leftover checks would count
    its sandboxes)."""
    if len(sys.argv) < 2:
        sys.exit(usage)
    with open("/tmp/oz-integration.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for bindir in sys.argv[1:]:
            measure(bindir)


def fail(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


# A pause before each timed command, so that what the previous one left running (the daemon
# spawning its next waiting agent, a sandbox's teardown) has finished and does not count
# against the next command, whichever tool that is.
SETTLE_S = float(os.environ.get("OZ_BENCH_SETTLE_MS", "50")) / 1000


def settle():
    time.sleep(SETTLE_S)


def stats_ms(times_s):
    """Median and p95 (nearest rank) in milliseconds."""
    v = sorted(times_s)
    p95 = v[max(0, math.ceil(0.95 * len(v)) - 1)]
    return statistics.median(v) * 1000, p95 * 1000


class Row:
    def __init__(self, name, median=None, p95=None, unit="ms", note="", value=None):
        self.name, self.median, self.p95, self.unit, self.note, self.value = name, median, p95, unit, note, value

    def cells(self):
        if self.value is not None:
            return [self.name, str(self.value), "", self.unit, self.note]
        fmt = "%.1f" if self.unit == "ms" else "%.2f"
        return [self.name, fmt % self.median, fmt % self.p95, self.unit, self.note]


class Section:
    def __init__(self, title, rows, commands=(), notes=()):
        self.title, self.rows, self.commands, self.notes = title, rows, list(commands), list(notes)

    def markdown(self):
        out = [f"### {self.title}", "", "| | median | p95 | unit | note |", "|---|---:|---:|---|---|"]
        out += ["| " + " | ".join(r.cells()) + " |" for r in self.rows]
        out += [""] + [f"- {n}" for n in self.notes]
        if self.commands:
            out += ["", "Commands:", "", "```"] + self.commands + ["```"]
        return "\n".join(out) + "\n"


def kb_field(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_pss_kb(pid):
    p = f"/proc/{pid}/smaps_rollup"
    return kb_field(p, "Rss"), kb_field(p, "Pss")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def oz_cgroups():
    found = set()
    for pat in ("/sys/fs/cgroup/oz/*", "/sys/fs/cgroup/*/oz/*"):
        found.update(p for p in glob.glob(pat) if os.path.isdir(p))
    return found


def mounts():
    with open("/proc/self/mountinfo") as f:
        return {" ".join(l.split()[3:5]) for l in f}


class Bench:
    def __init__(self, bindir):
        self.bindir = os.path.abspath(bindir)
        self.oz = os.path.join(self.bindir, "oz")
        for b in ("oz", "oz-daemon", "oz-agent"):
            if not os.access(os.path.join(self.bindir, b), os.X_OK):
                fail(f"no {self.bindir}/{b}")
        try:
            pw = pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
            pw = pwd.getpwnam(USER)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, pw.pw_dir
        if not os.path.isdir(self.home):
            os.makedirs(self.home)
            os.chown(self.home, self.uid, self.gid)
        self.as_user = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
        self.ws = tempfile.mkdtemp(prefix="oz-bench-")
        os.chmod(self.ws, 0o755)
        self.cgroups_before, self.mounts_before = oz_cgroups(), mounts()
        self.socket = os.path.join(self.ws, "control.sock")
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "TERM": "dumb", "USER": USER,
                    "LOGNAME": USER, "OZ_SOCKET": self.socket}
        self.daemon = None
        self.conf = self.make_conf("daemon", max_sandboxes_per_user=max(LOADS + [0]) + 16, launch_check_ms=0)
        self.standalone_conf = self.make_conf("standalone")
        self.log = os.path.join(self.ws, "daemon.log")

    def make_conf(self, name, **extra):
        d = os.path.join(self.ws, name)
        conf = {"profile_dir": f"{d}/profiles", "sandbox_path": f"{d}/sandbox", "state_dir": f"{d}/state",
                "log_dir": f"{d}/log", "socket_path": self.socket, "shell_path": "/bin/sh",
                "agent_path": os.path.join(self.bindir, "oz-agent")}
        conf.update(extra)
        for k in ("profile_dir", "sandbox_path", "state_dir", "log_dir"):
            os.makedirs(conf[k])
        os.chmod(d, 0o755)
        for prof in (STRICT, SLEEPER):
            path = f"{d}/profiles/{prof['name']}.json"
            with open(path, "w") as f:
                json.dump(prof, f)
            os.chmod(path, 0o644)
        path = f"{d}/oz.conf"
        with open(path, "w") as f:
            json.dump(conf, f)
        conf["path"] = path
        return conf

    # -- the daemon --------------------------------------------------------------------------
    def start_daemon(self):
        log = open(self.log, "ab")
        self.daemon = subprocess.Popen([os.path.join(self.bindir, "oz-daemon"), "--config", self.conf["path"]],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       env=dict(os.environ, OZ_SOCKET=self.socket))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                fail(f"oz-daemon exited at start:\n{open(self.log).read()}")
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        fail(f"oz-daemon did not answer on {self.socket}:\n{open(self.log).read()}")

    def stop_daemon(self):
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(15)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    # -- running things ----------------------------------------------------------------------
    def oz_user(self, *args):
        return self.as_user + [self.oz, *args]

    def run_user(self, *args, check=True):
        r = subprocess.run(self.oz_user(*args), env=self.env, cwd="/", stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            fail(f"oz {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}\n{self.log_tail()}")
        return r

    def log_tail(self):
        try:
            return "".join(open(self.log).readlines()[-20:])
        except OSError:
            return ""

    def measure(self, cmds, runs=None, warmup=3):
        """Median and p95 of each command of `cmds` (name -> argv, run without a shell), in
        rounds: every round runs each command once, so a change in the machine's load meets
        all of them alike and their ratios hold."""
        runs = runs or RUNS
        times = {name: [] for name in cmds}
        for i in range(warmup + runs):
            for name, cmd in cmds.items():
                settle()
                t = time.perf_counter()
                r = subprocess.run(cmd, env=self.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
                dt = time.perf_counter() - t
                if r.returncode != 0:
                    fail(f"{name}: {shlex.join(cmd)} exited {r.returncode}: "
                         f"{r.stderr.decode(errors='replace').strip()}\n{self.log_tail()}")
                if i >= warmup:
                    times[name].append(dt)
        return {name: stats_ms(t) for name, t in times.items()}

    def sandboxes(self):
        r = self.run_user("list", "--json")
        return json.loads(r.stdout)

    def wait_count(self, n, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.sandboxes()) == n:
                return
            time.sleep(0.1)
        fail(f"expected {n} sandboxes, have {len(self.sandboxes())}")

    def leftovers(self, grace=10):
        """What the sandboxes left behind (cgroups, state files, mounts), after up to `grace` s."""
        end = time.monotonic() + grace
        while True:
            found = [f"cgroup {c}" for c in sorted(oz_cgroups() - self.cgroups_before)]
            for conf in (self.conf, self.standalone_conf):
                found += [f"sandbox dir {conf['sandbox_path']}/{e}" for e in os.listdir(conf["sandbox_path"])]
                for d in (conf["state_dir"], conf["sandbox_path"]):
                    found += [f"state file {os.path.join(top, f)}" for top, _, files in os.walk(d) for f in files]
            # firejail keeps mounts of its own under /run/firejail once it ran.
            found += [f"mount {m}" for m in sorted(mounts() - self.mounts_before) if " /run/firejail" not in f" {m}"]
            if not found or time.monotonic() >= end:
                return found
            time.sleep(0.1)

    def cleanup(self):
        try:
            if self.daemon is not None and self.daemon.poll() is None:
                self.run_user("kill", "all", check=False)
                try:
                    self.wait_count(0, timeout=15)
                except SystemExit:
                    pass
        finally:
            self.stop_daemon()
            left = self.left = self.leftovers(grace=5)
            subprocess.run(["rm", "-rf", "--one-file-system", self.ws], check=False)
            if left:
                print("bench: left behind:\n  " + "\n  ".join(left), file=sys.stderr)


# -- sections ------------------------------------------------------------------------------------
def bwrap_args():
    args = ["--ro-bind", "/usr", "/usr"]
    for d in ("bin", "lib", "lib64", "sbin"):
        p = "/" + d
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.exists(p):
            args += ["--ro-bind", p, p]
    return args + ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                   "--unshare-all", "--new-session", "--cap-drop", "ALL", "--die-with-parent", "/bin/true"]


FIREJAIL = ["firejail", "--quiet", "--noprofile", "--net=none", "--private", "--caps.drop=all", "--seccomp",
            "--nonewprivs", "/bin/true"]


def section_launch(b):
    cmds = {
        "native /bin/true": b.as_user + ["/bin/true"],
        "oz run strict (through the daemon)": b.oz_user("run", "strict"),
        "oz-agent standalone (strict, as root, drops to the user)":
            [os.path.join(b.bindir, "oz-agent"), "standalone", "--config", b.standalone_conf["path"], "--profile",
             b.standalone_conf["profile_dir"] + "/strict.json", "--uid", str(b.uid)],
        "bwrap desktop-like": b.as_user + ["bwrap"] + bwrap_args(),
        "firejail (noprofile, net none, private, caps, seccomp, nonewprivs)": b.as_user + FIREJAIL,
        "oz list (client start, connect, hello, one request)": b.oz_user("list"),
    }
    res = b.measure(cmds)
    rows = [Row(name, *m) for name, m in res.items()]
    oz, bw, fj = (res[k][0] for k in ("oz run strict (through the daemon)", "bwrap desktop-like",
                                       "firejail (noprofile, net none, private, caps, seccomp, nonewprivs)"))
    sa = res["oz-agent standalone (strict, as root, drops to the user)"][0]
    rows += [Row("ratio oz run / bwrap", value="%.2f" % (oz / bw), unit="x"),
             Row("ratio oz run / firejail", value="%.2f" % (oz / fj), unit="x"),
             Row("ratio oz-agent standalone / bwrap", value="%.2f" % (sa / bw), unit="x"),
             Row("oz run minus standalone (client + daemon)", value="%.1f" % (oz - sa), unit="ms")]
    notes = [f"{RUNS} rounds after 3 warm-up rounds; each round runs every command once (python3 "
             f"subprocess.run, stdio on /dev/null), each after a {SETTLE_S * 1000:.0f} ms pause so that "
             "none pays for what the previous one left running. All as {USER} except the standalone agent, "
             "which starts as root and drops to the user as the daemon's agent does.",
             "Profile `strict`: " + json.dumps(STRICT)]
    return Section("Launch of /bin/true", rows, [" ".join(shlex.quote(c) for c in c_) for c_ in cmds.values()], notes)


def launch_sleepers(b, n, times):
    # Sandboxes of earlier `oz run`s may still be ending: wait for them first.
    sleepers = len([s for s in b.sandboxes() if s["profile"] == SLEEPER["name"]])
    b.wait_count(sleepers)
    for _ in range(n - sleepers):
        t = time.monotonic()
        b.run_user("launch", "sleeper", "1000000")
        times.append(time.monotonic() - t)
    b.wait_count(n)


def section_load(b):
    rows, launch_times = [], []
    b.memory = {}
    for n in LOADS:
        launch_sleepers(b, n, launch_times)
        res = b.measure({"run": b.oz_user("run", "strict"), "list": b.oz_user("list"),
                         "bwrap": b.as_user + ["bwrap"] + bwrap_args()})
        rows.append(Row(f"oz run strict, {n} sandboxes running", *res["run"],
                        note="%.2f x bwrap (%.1f ms)" % (res["run"][0] / res["bwrap"][0], res["bwrap"][0])))
        rows.append(Row(f"oz list, {n} sandboxes running", *res["list"]))
        b.memory[n] = rss_pss_kb(b.daemon.pid)
        with open(f"/proc/{b.daemon.pid}/maps") as f:
            b.memory[("maps", n)] = (kb_field(f"/proc/{b.daemon.pid}/status", "Threads"), len(f.readlines()))
        if n == max(LOADS):
            b.memory["sandboxes"] = [(rss_pss_kb(s["agent_pid"]), rss_pss_kb(s["init_pid"])) for s in b.sandboxes()
                                      if s["profile"] == SLEEPER["name"] and s.get("agent_pid") and s.get("init_pid")]
    if launch_times:
        rows.append(Row(f"oz launch sleeper (detached, launch_check_ms 0), {len(launch_times)} launches",
                        *stats_ms(launch_times)))
    notes = ["Each level measures `oz run strict`, `oz list` and bwrap desktop-like in rounds; the bwrap "
             "ratio is the figure to compare across levels (the machine's load may change between them).",
             "Sandboxes running: `oz launch sleeper 1000000` as the user, profile `sleeper` = `strict` with "
             "path /bin/sleep and multi: true; max_sandboxes_per_user raised in the bench's oz.conf."]
    return Section("Launch with sandboxes running", rows, [shlex.join(b.oz_user("launch", "sleeper", "1000000"))], notes)


def section_memory(b):
    sbs = b.memory.get("sandboxes") or []
    if not sbs:
        return Section("Memory", [], notes=["no sandboxes were measured"])

    def col(f):
        return [f(a, i) / 1024 for a, i in sbs if None not in (*a, *i)]
    rows = []
    for name, f in [("agent RSS", lambda a, i: a[0]), ("agent PSS", lambda a, i: a[1]),
                    ("init RSS", lambda a, i: i[0]), ("init PSS", lambda a, i: i[1]),
                    ("agent + init RSS", lambda a, i: a[0] + i[0]), ("agent + init PSS", lambda a, i: a[1] + i[1])]:
        v = sorted(col(f))
        rows.append(Row(f"per sandbox: {name}", statistics.median(v), v[max(0, math.ceil(0.95 * len(v)) - 1)], "MB"))
    for n in LOADS:
        rss, pss = b.memory[n]
        rows.append(Row(f"daemon RSS / PSS, {n} sandboxes", value="%.1f / %.1f" % (rss / 1024, pss / 1024), unit="MB"))
    for n in LOADS:
        threads, maps = b.memory[("maps", n)]
        rows.append(Row(f"daemon threads / memory mappings, {n} sandboxes", value=f"{threads} / {maps}", unit="",
                        note="a fork of the daemon copies every mapping"))
    notes = [f"From /proc/PID/smaps_rollup of the {len(sbs)} sleeper sandboxes' agent and init (the payload "
             "excluded); median and p95 over the sandboxes."]
    return Section("Memory", rows, notes=notes)


def section_cycles(b):
    dpid = b.daemon.pid
    b.wait_count(0)
    fds0, (rss0, _) = fd_count(dpid), rss_pss_kb(dpid)
    times, cmd = [], b.oz_user("run", "strict")
    for i in range(CYCLES):
        t = time.monotonic()
        r = subprocess.run(cmd, env=b.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        times.append(time.monotonic() - t)
        if r.returncode != 0:
            fail(f"cycle {i}: oz run strict exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    b.wait_count(0)
    left = b.leftovers()
    time.sleep(0.5)
    fds1, (rss1, _) = fd_count(dpid), rss_pss_kb(dpid)
    rows = [Row(f"oz run strict, {CYCLES} cycles back to back", *stats_ms(times)),
            Row("daemon fds before / after", value=f"{fds0} / {fds1}", unit="fds"),
            Row("daemon RSS before / after", value="%.1f / %.1f" % (rss0 / 1024, rss1 / 1024), unit="MB"),
            Row("leftovers (cgroups, state files, mounts)", value=len(left), unit="",
                note="; ".join(left[:5]))]
    if left:
        b.failed = f"{len(left)} leftovers after the cycles: {left[:5]}"
    return Section(f"{CYCLES} oz run cycles", rows, [shlex.join(cmd)])


def section_forward(b):
    import forward
    res = forward.measure([os.path.abspath(b.bindir)], b.uid)
    direct = statistics.median(res[forward.DIRECT][0])
    rows = []
    for m, (gbits, cpu, total) in res.items():
        med = statistics.median(gbits)
        rows.append(Row(f"one TCP stream: {m}", med, forward.p95(gbits), "Gbit/s",
                        f"{med / direct:.2f} of direct; relay CPU {statistics.median(cpu):.2f} cores, "
                        f"all CPU {statistics.median(total):.2f} cores"))
    return Section("Socket forwarder throughput", rows,
                   commands=["sudo python3 bench/forward.py target/release"],
                   notes=[f"iperf3 -t {forward.SECONDS}, {forward.ROUNDS} rounds; median and p95 per round",
                          "client in the sandbox's network namespace, server on the host's loopback; "
                          "all CPU: the relay plus iperf3's client and server"])


SECTIONS = [section_launch, section_cycles, section_load, section_memory, section_forward]


def machine_facts():
    def sh(cmd):
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return (r.stdout.strip() or r.stderr.strip()).splitlines()[0] if (r.stdout or r.stderr) else "?"
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = kb_field("/proc/meminfo", "MemTotal")
    return [f"nproc: {os.cpu_count()}", f"kernel: {os.uname().release}", f"CPU: {cpu}",
            f"memory: {mem / 1024 / 1024:.1f} GiB", "load average at start: " + " ".join(open("/proc/loadavg").read().split()[:3]),
            f"{sh('bwrap --version')}; {sh('firejail --version')}; python {sys.version.split()[0]}",
            f"oz: {sh(f'git -C {ROOT} rev-parse --short HEAD')} (release build)"]


def write_report(facts, sections, elapsed):
    history = ""
    if os.path.exists(OUT):
        text = open(OUT).read()
        if HISTORY_MARKER in text:
            history = text[text.index(HISTORY_MARKER) + len(HISTORY_MARKER):]
    body = ["# oz benchmarks", "",
            "Written by `sudo bash bench/run.sh` (one run; every figure is a median and p95 of repeated runs "
            "in that run, so ratios hold even on a busy machine). Absolute figures depend on the load of the "
            "machine; compare ratios.", "", "## Machine", ""]
    body += [f"- {f}" for f in facts] + [f"- bench wall time: {elapsed:.0f} s", "", "## Results", ""]
    body += [s.markdown() for s in sections]
    with open(OUT, "w") as f:
        f.write("\n".join(body) + "\n" + HISTORY_MARKER + (history or "\n"))


def main():
    start = time.monotonic()
    b = Bench(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release"))
    b.failed = None
    sections = []
    try:
        facts = machine_facts()
        b.start_daemon()
        for sec in SECTIONS:
            s = sec(b)
            print(s.markdown(), flush=True)
            sections.append(s)
    except BaseException:
        # Kept for a look at what went wrong; the workspace itself is removed.
        subprocess.run(["cp", b.log, "/tmp/oz-bench-daemon.log"], check=False)
        print("bench: the daemon's log is in /tmp/oz-bench-daemon.log", file=sys.stderr)
        raise
    finally:
        b.cleanup()
    left = b.left
    write_report(facts, sections, time.monotonic() - start)
    print(f"bench: wrote {OUT} in {time.monotonic() - start:.0f} s")
    if b.failed or left:
        fail(b.failed or f"left behind: {left}")


if __name__ == "__main__":
    main()
