#!/usr/bin/env python3
"""X11 start-up and memory benchmark (not a test): for each xserver backend, the time from
`oz launch` of an xclock profile to its window being mapped (median of RUNS), and the RSS/PSS of
that sandbox's X stack (host-side helpers and, for xpra, the server and its Xvfb inside).

    sudo bench/x11.py [RUNS]      # default 10; takes the integration lock (/tmp/oz-integration.lock)

A private Xvfb stands in for the desktop; a real oz-daemon runs on a temporary socket; `oz` runs
as OZ_BENCH_USER (default oz-test-a). OZ_BIN_DIR: where oz, oz-daemon, oz-agent are (default
target/debug).
"""
import fcntl, json, os, pwd, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OZ_BIN_DIR", os.path.join(ROOT, "target/debug"))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
USER = pwd.getpwnam(os.environ.get("OZ_BENCH_USER", "oz-test-a"))


def wait(cond, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def tree(display, xauth=None):
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": display}
    if xauth:
        env["XAUTHORITY"] = xauth
    r = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True)
    return r.stdout


def procs():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read()
                comm = open(f"/proc/{p}/comm").read().strip()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
                ns = os.readlink(f"/proc/{p}/ns/pid")
                out.append((int(p), ppid, comm, ns))
            except OSError:
                pass
    return out


def mem_kb(pid):
    rss = pss = 0
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def x_stack(agent, init):
    ns = os.readlink(f"/proc/{init}/ns/pid")
    ps = procs()
    host = [p for p, pp, c, _ in ps if pp == agent and c in ("Xephyr", "xpra")]
    inside = [p for p, _, c, n in ps if n == ns and c in ("xpra", "Xvfb")]
    return host + inside


def oz(sock, display, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": USER.pw_dir, "USER": USER.pw_name, "OZ_SOCKET": sock, "DISPLAY": display}
    def drop():
        os.setgid(USER.pw_gid)
        os.setgroups([])
        os.setuid(USER.pw_uid)
    return subprocess.run([os.path.join(BIN, "oz"), *args], env=env, preexec_fn=drop, capture_output=True, text=True, cwd="/")


class Stack:
    """A private Xvfb standing in for the desktop and a real oz-daemon on a temporary socket with
    `profiles` (dicts), under the integration tests' host-wide lock; a context manager."""

    def __init__(self, profiles, screen="1280x1024", log_xpra=False):
        self.profiles, self.screen, self.log_xpra = profiles, screen, log_xpra

    def __enter__(self):
        self.lock = open("/tmp/oz-integration.lock", "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        n = next(n for n in range(150, 250) if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"))
        self.n, self.display = n, f":{n}"
        self.xvfb = subprocess.Popen(["Xvfb", self.display, "-ac", "-nolisten", "tcp", "-screen", "0", f"{self.screen}x24"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ws = ws = tempfile.mkdtemp(prefix="oz-bench-x11-")
        os.chmod(ws, 0o755)
        for d in ("profiles", "state", "sandbox", "log"):
            os.mkdir(os.path.join(ws, d))
        self.sock = os.path.join(ws, "state/control.sock")
        json.dump({"profile_dir": f"{ws}/profiles", "sandbox_path": f"{ws}/sandbox", "state_dir": f"{ws}/state", "log_dir": f"{ws}/log",
                   "socket_path": self.sock, "agent_path": os.path.join(BIN, "oz-agent"), "log_xpra": self.log_xpra}, open(f"{ws}/oz.conf", "w"))
        for p in self.profiles:
            json.dump(p, open(f"{ws}/profiles/{p['name']}.json", "w"))
        self.daemon = subprocess.Popen([os.path.join(BIN, "oz-daemon"), "--config", f"{ws}/oz.conf"],
                                       env={"OZ_SOCKET": self.sock, "PATH": "/usr/bin:/bin"},
                                       stdout=open(f"{ws}/daemon.log", "w"), stderr=subprocess.STDOUT)
        assert wait(lambda: os.path.exists(f"/tmp/.X11-unix/X{n}") and os.path.exists(self.sock), 10), "Xvfb or oz-daemon did not start"
        return self

    def oz(self, *args):
        return oz(self.sock, self.display, *args)

    def __exit__(self, *exc):
        for sid in [str(s["id"]) for s in json.loads(self.oz("list", "--json").stdout or "[]")]:
            self.oz("kill", sid)
        self.daemon.terminate()
        self.daemon.wait()
        self.xvfb.terminate()
        self.xvfb.wait()
        subprocess.run(["rm", "-rf", self.ws])
        self.lock.close()


def p95(values):
    v = sorted(values)
    return v[max(0, -(-95 * len(v) // 100) - 1)]


def main():
    profiles = [{"name": f"bench-{b}", "path": "/usr/bin/xclock", "networking": {"type": "empty"},
                 "xserver": {"enabled": True, "backend": b}} for b in ("xpra", "xephyr")]
    with Stack(profiles) as st:
        sock, display = st.sock, st.display
        for backend in ("xpra", "xephyr"):
            launch, mapped, rss, pss = [], [], [], []
            for _ in range(RUNS):
                t0 = time.monotonic()
                r = oz(sock, display, "launch", f"bench-{backend}")
                t1 = time.monotonic()
                assert r.returncode == 0, r.stderr
                sid = r.stdout.strip()
                info = next(s for s in json.loads(oz(sock, display, "list", "--json").stdout) if str(s["id"]) == sid)
                agent, init = info["agent_pid"], info["init_pid"]
                if backend == "xephyr":
                    xe = [p for p, pp, c, _ in procs() if pp == agent and c == "Xephyr"][0]
                    args = open(f"/proc/{xe}/cmdline").read().split("\0")
                    nested, xauth = args[1], args[args.index("-auth") + 1]
                    ok = wait(lambda: "xclock" in tree(nested, xauth), 15)
                else:
                    ok = wait(lambda: "xclock" in tree(display), 15)
                t2 = time.monotonic()
                assert ok, f"{backend}: no window"
                time.sleep(1)
                mems = [mem_kb(p) for p in x_stack(agent, init)]
                rss.append(sum(m[0] for m in mems))
                pss.append(sum(m[1] for m in mems))
                launch.append(t1 - t0)
                mapped.append(t2 - t0)
                oz(sock, display, "kill", sid)
                wait(lambda: sid not in oz(sock, display, "list").stdout, 10)
            med = statistics.median
            print(f"{backend}: oz launch returns {med(launch)*1000:.0f} ms (p95 {p95(launch)*1000:.0f}), window mapped "
                  f"{med(mapped)*1000:.0f} ms after oz launch began (p95 {p95(mapped)*1000:.0f}; median of {RUNS}); "
                  f"X stack RSS {med(rss)/1024:.0f} MiB, PSS {med(pss)/1024:.0f} MiB")


if __name__ == "__main__":
    main()
