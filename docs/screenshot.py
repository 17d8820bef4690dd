#!/usr/bin/env python3
"""The README's screenshot of a sandboxed window: the shipped xterm profile with `border: true`,
run by a real oz-daemon on a private Xvfb (the X test harness of bench/x11.py), photographed
with ImageMagick's `import` and cropped around the window. Refresh it with

    sudo python3 docs/screenshot.py          # writes docs/images/xpra-xterm-border.png

OZ_BIN_DIR: where oz, oz-daemon, oz-agent are (default target/debug). Takes the integration
tests' host-wide lock.
"""
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import x11  # noqa: E402  (bench/x11.py: the Xvfb + daemon stack)

OUT = os.path.join(ROOT, "docs/images/xpra-xterm-border.png")
SCRIPT = ("printf 'inside an oz sandbox (xpra backend, empty network)\\n\\n'; id; echo; "
          "echo \"DISPLAY=$DISPLAY\"; ls -A ~; echo; ip -brief link 2>/dev/null || cat /proc/net/dev; "
          "printf '\\nthe host display: '; ls /tmp/.X11-unix 2>&1 | tr -d '\\n'; echo ' (none)'; sleep 600")


def xtool(display, *args):
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": display}
    return subprocess.run(list(args), env=env, capture_output=True, text=True).stdout


def main():
    profile = json.load(open(os.path.join(ROOT, "profiles/cells.d/xterm.json")))
    profile["xserver"]["border"] = True
    with x11.Stack([profile], screen="900x560") as st:
        xtool(st.display, "xsetroot", "-solid", "#3b4252")
        r = st.oz("launch", "xterm", "--", "-geometry", "74x14", "-fa", "Monospace", "-fs", "10", "-e", "/bin/sh", "-c", SCRIPT)
        assert r.returncode == 0, r.stderr
        ids = []
        assert x11.wait(lambda: ids.extend(xtool(st.display, "xdotool", "search", "--onlyvisible", "--name", r"^\[oz\]").split()) or ids, 20), \
            "no [oz] window"
        xtool(st.display, "xdotool", "windowmove", ids[0], "48", "40")
        time.sleep(2)
        geo = dict(l.split("=") for l in xtool(st.display, "xdotool", "getwindowgeometry", "--shell", ids[0]).split())
        x, y, w, h = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        m = 24
        crop = f"{w + 2 * m}x{h + 2 * m}+{max(0, x - m)}+{max(0, y - m)}"
        shot = OUT + ".full.png"
        subprocess.run(["import", "-window", "root", shot], env={"PATH": "/usr/bin:/bin", "DISPLAY": st.display}, check=True)
        subprocess.run(["/usr/bin/convert", shot, "-crop", crop, "+repage", OUT], check=True)
        os.unlink(shot)
        print(f"{OUT}: window {xtool(st.display, 'xdotool', 'getwindowname', ids[0]).strip()!r} {w}x{h}")


if __name__ == "__main__":
    main()
