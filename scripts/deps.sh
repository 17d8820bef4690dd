#!/usr/bin/env bash
# Install the Debian packages oz needs to build, test and benchmark. Idempotent.
# `deps.sh build` installs only what the build needs, so that a caller can start building while
# `deps.sh` installs the rest.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "deps.sh: must run as root" >&2; exit 1; }
BUILD=(libseccomp-dev pkg-config)  # build: libseccomp crate
PKGS=(
  "${BUILD[@]}"
  passwd util-linux procps       # tests: useradd, runuser, ps
  iproute2 nftables openvpn      # networking (per-sandbox VPN)
  python3 openssl                # networking tests: servers, VPN certificates
  bubblewrap firejail hyperfine  # benchmarks, side by side
  iperf3 socat                   # forwarder benchmark: throughput, the original's two-relay design
  gcc                            # bench/seccomp.sh: the getppid loop it compiles
  xpra xvfb xserver-xephyr python3-pil python3-gi-cairo  # xserver: both backends
  x11-apps xdotool x11-utils xclip imagemagick evince eog xterm dbus-x11 libnotify-bin python3-dbus trayer  # x11 tests (trayer: a system tray)
  systemd                        # tests: systemd-analyze, systemd-socket-activate

)
[ "${1:-}" = build ] && PKGS=("${BUILD[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # With recommends: Xpra relies on several of them (as installed where the X tests were checked).
  apt-get install -y -qq "${missing[@]}"
fi
[ "${1:-}" = build ] && exit 0
# cargo-machete: scripts/test.sh fails on a declared but unused dependency.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-machete >/dev/null 2>&1; then
  cargo install cargo-machete --locked --version 0.9.2
fi
# cargo-fuzz: scripts/test.sh runs every fuzz target for a bounded time after the tests.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
