#!/usr/bin/env python3
"""The README's screenshot of a sandboxed window: the shipped xterm profile with `border: true`
(its colour is the profile's, light blue for `xterm`), run by a real oz-daemon on a private Xvfb
(the X test harness of bench/x11.py), photographed with ImageMagick's `import` and cropped
around the window. Refresh it with

    sudo python3 docs/screenshot.py          # writes docs/images/xpra-xterm-border.png

OZ_BIN_DIR: where oz, oz-daemon, oz-agent are (default target/debug). Takes the integration
tests' host-wide lock.
"""
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import x11  # noqa: E402  (bench/x11.py: the Xvfb + daemon stack)

OUT = os.path.join(ROOT, "docs/images/xpra-xterm-border.png")
SCRIPT = ("printf 'inside an oz sandbox: xpra backend, empty network, border on\\n\\n'; id; echo; "
          "echo \"DISPLAY=$DISPLAY (the sandbox's own Xvfb)\"; printf 'X sockets: '; ls /tmp/.X11-unix; "
          "printf 'network: '; ls /sys/class/net | tr '\\n' ' '; echo; sleep 600")


def xtool(display, *args):
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": display}
    return subprocess.run(list(args), env=env, capture_output=True, text=True).stdout


def main():
    profile = json.load(open(os.path.join(ROOT, "profiles/cells.d/xterm.json")))
    profile["xserver"]["border"] = True
    with x11.Stack([profile], screen="900x560") as st:
        r = st.oz("launch", "xterm", "--", "-T", "xterm", "-geometry", "70x10", "-fa", "Monospace", "-fs", "10",
                  "-bg", "#1d1f21", "-fg", "#c5c8c6", "-e", "/bin/sh", "-c", SCRIPT)
        assert r.returncode == 0, r.stderr
        ids = []
        assert x11.wait(lambda: ids.extend(xtool(st.display, "xdotool", "search", "--onlyvisible", "--name", r"^\[oz\]").split()) or ids, 20), \
            "no [oz] window"
        xtool(st.display, "xdotool", "windowmove", ids[0], "48", "40")
        time.sleep(2)
        geo = dict(l.split("=") for l in xtool(st.display, "xdotool", "getwindowgeometry", "--shell", ids[0]).split())
        x, y, w, h = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        shot = OUT + ".full.png"
        subprocess.run(["import", "-window", "root", shot], env={"PATH": "/usr/bin:/bin", "DISPLAY": st.display}, check=True)
        # The window (its border is oz's, drawn by the Xpra client) on a desktop-grey margin.
        subprocess.run(["/usr/bin/convert", shot, "-crop", f"{w}x{h}+{x}+{y}", "+repage", "-bordercolor", "#4c566a",
                        "-border", "20", OUT], check=True)
        os.unlink(shot)
        print(f"{OUT}: window {xtool(st.display, 'xdotool', 'getwindowname', ids[0]).strip()!r} {w}x{h}")


if __name__ == "__main__":
    main()
