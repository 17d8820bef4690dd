#!/usr/bin/env python3
"""X11 start-up and memory benchmark (not a test): for each xserver backend, the time from
`oz launch` of an xclock profile to its window being mapped (polled while `oz launch` runs;
median of RUNS), and the RSS/PSS of
that sandbox's X stack (host-side helpers and, for xpra, the server and its Xvfb inside).

    sudo bench/x11.py [RUNS]      # default 10; takes the integration lock (/tmp/oz-integration.lock)

A private Xvfb stands in for the desktop; a real oz-daemon runs on a temporary socket; `oz` runs
as OZ_BENCH_USER (default oz-test-a). OZ_BIN_DIR: where oz, oz-daemon, oz-agent are (default
target/debug).
"""
import fcntl, json, os, pwd, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("OZ_BIN_DIR", os.path.join(ROOT, "target/debug")))
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
        if not wait(lambda: os.path.exists(f"/tmp/.X11-unix/X{n}") and os.path.exists(self.sock), 10):
            self.__exit__()
            raise SystemExit(f"Xvfb or oz-daemon did not start (see {BIN})")
        return self

    def oz(self, *args):
        return oz(self.sock, self.display, *args)

    def __exit__(self, *exc):
        if self.daemon.poll() is None and os.path.exists(self.sock):
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


def oz_launch_until(sock, display, profile, mapped):
    """`oz launch PROFILE` while polling `mapped()`: the times from the start until `oz launch`
    returned and until `mapped()` first held (polled every 10 ms while it runs, and after)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": USER.pw_dir, "USER": USER.pw_name, "OZ_SOCKET": sock, "DISPLAY": display}
    def drop():
        os.setgid(USER.pw_gid)
        os.setgroups([])
        os.setuid(USER.pw_uid)
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(BIN, "oz"), "launch", profile], env=env, preexec_fn=drop, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd="/")
    returned = seen = None
    while time.monotonic() - t0 < 20 and (returned is None or seen is None):
        if returned is None and p.poll() is not None:
            returned = time.monotonic() - t0
        if seen is None and mapped():
            seen = time.monotonic() - t0
        time.sleep(0.01)
    out, err = p.communicate()
    assert p.returncode == 0, err
    return out.strip(), returned, seen


def xephyr_mapped(uid):
    """An xclock window on the nested display of the user's Xephyr."""
    for pid, _, comm, _ in procs():
        if comm == "Xephyr" and os.stat(f"/proc/{pid}").st_uid == uid:
            args = open(f"/proc/{pid}/cmdline").read().split("\0")
            if "-auth" in args and "xclock" in tree(args[1], args[args.index("-auth") + 1]):
                return True
    return False


def main():
    profiles = [{"name": f"bench-{b}", "path": "/usr/bin/xclock", "networking": {"type": "empty"},
                 "xserver": {"enabled": True, "backend": b}} for b in ("xpra", "xephyr")]
    with Stack(profiles) as st:
        sock, display = st.sock, st.display
        for backend in ("xpra", "xephyr"):
            launch, mapped, rss, pss = [], [], [], []
            for _ in range(RUNS):
                if backend == "xephyr":
                    cond = lambda: xephyr_mapped(USER.pw_uid)
                else:
                    cond = lambda: "xclock" in tree(display)
                sid, t_launch, t_mapped = oz_launch_until(sock, display, f"bench-{backend}", cond)
                assert t_mapped is not None, f"{backend}: no window"
                info = next(s for s in json.loads(oz(sock, display, "list", "--json").stdout) if str(s["id"]) == sid)
                time.sleep(1)
                mems = [mem_kb(p) for p in x_stack(info["agent_pid"], info["init_pid"])]
                rss.append(sum(m[0] for m in mems))
                pss.append(sum(m[1] for m in mems))
                launch.append(t_launch)
                mapped.append(t_mapped)
                oz(sock, display, "kill", sid)
                wait(lambda: sid not in oz(sock, display, "list").stdout, 10)
            med = statistics.median
            print(f"{backend}: window mapped {med(mapped)*1000:.0f} ms after oz launch began (p95 {p95(mapped)*1000:.0f}), "
                  f"oz launch returns after {med(launch)*1000:.0f} ms (p95 {p95(launch)*1000:.0f}; it watches the program "
                  f"for launch_check_ms, 300); median of {RUNS}; X stack RSS {med(rss)/1024:.0f} MiB, PSS {med(pss)/1024:.0f} MiB")


if __name__ == "__main__":
    main()
