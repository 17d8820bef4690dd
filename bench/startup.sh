#!/bin/sh
# Sandbox start-up benchmark (not a test): from starting `oz-agent standalone` to the exit of
# /bin/true under a strict profile (empty network, default seccomp blacklist, Landlock), beside
# bubblewrap with desktop-like flags and firejail (when installed), measured in the same run.
#
#   sudo bench/startup.sh [RUNS]        # RUNS >= 30, default 50
#
# Environment: OZ_BIN_DIR (where oz-agent is; default target/release, else target/debug),
# OZ_BENCH_USER (default oz-test-a, created when missing). Needs hyperfine and python3; without
# hyperfine a date +%s%N loop is used. Every tool runs /bin/true as the same unprivileged user:
# oz-agent starts as root and drops to the user; bwrap and firejail are started through setpriv
# (bwrap as root when unprivileged user namespaces are off).
set -eu

RUNS=${1:-50}
[ "$RUNS" -ge 30 ] || { echo "startup.sh: RUNS must be >= 30" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "startup.sh: run as root (oz-agent standalone needs it)" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${OZ_BIN_DIR:-}" ]; then BIN=$OZ_BIN_DIR
elif [ -x "$ROOT/target/release/oz-agent" ]; then BIN=$ROOT/target/release
else BIN=$ROOT/target/debug; fi
AGENT=$BIN/oz-agent
if [ -z "${OZ_BIN_DIR:-}" ] && [ "$ROOT/target/debug/oz-agent" -nt "$AGENT" ] 2>/dev/null; then
    echo "startup.sh: warning: $AGENT is older than target/debug/oz-agent (rebuild with --release)" >&2
fi
[ -x "$AGENT" ] || { echo "startup.sh: no $AGENT (cargo build --release -p oz-agent)" >&2; exit 2; }

USER_NAME=${OZ_BENCH_USER:-oz-test-a}
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME"
U=$(id -u "$USER_NAME")
G=$(id -g "$USER_NAME")
AS_USER="setpriv --reuid=$U --regid=$G --clear-groups"

WS=$(mktemp -d /tmp/oz-bench-XXXXXX)
trap 'rm -rf "$WS"' EXIT INT TERM
chmod 755 "$WS"
mkdir "$WS/profiles" "$WS/state" "$WS/sandbox" "$WS/log"
cat > "$WS/oz.conf" <<EOF
{"profile_dir": "$WS/profiles", "sandbox_path": "$WS/sandbox", "state_dir": "$WS/state",
 "log_dir": "$WS/log", "socket_path": "$WS/state/control.sock"}
EOF
cat > "$WS/profiles/bench.json" <<EOF
{"name": "bench", "path": "/bin/true", "networking": {"type": "empty"},
 "seccomp": {"mode": "blacklist", "enforce": true}, "landlock": true,
 "whitelist": [], "blacklist": []}
EOF

OZ_CMD="$AGENT standalone --config $WS/oz.conf --profile $WS/profiles/bench.json --uid $U"

# bwrap with desktop-like flags; /bin, /lib, /lib64 become symlinks where the host has them so.
bind_or_link() {
    if [ -L "/$1" ]; then printf ' --symlink %s /%s' "$(readlink "/$1")" "$1"
    elif [ -e "/$1" ]; then printf ' --ro-bind /%s /%s' "$1" "$1"; fi
}
BWRAP_ARGS="--ro-bind /usr /usr$(bind_or_link bin)$(bind_or_link lib)$(bind_or_link lib64) --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp --unshare-all --cap-drop ALL --die-with-parent /bin/true"
if $AS_USER bwrap $BWRAP_ARGS 2>/dev/null; then
    BWRAP_CMD="$AS_USER bwrap $BWRAP_ARGS"; BWRAP_AS=$USER_NAME
else
    BWRAP_CMD="bwrap $BWRAP_ARGS"; BWRAP_AS="root (no unprivileged user namespaces)"
fi

# Sanity: every command must succeed before it is timed.
$OZ_CMD || { echo "startup.sh: oz-agent standalone failed (status $?)" >&2; exit 1; }
$BWRAP_CMD || { echo "startup.sh: bwrap failed" >&2; exit 1; }
FIREJAIL_CMD=
if command -v firejail >/dev/null 2>&1; then
    FIREJAIL_CMD="$AS_USER firejail --quiet --noprofile /bin/true"
    $FIREJAIL_CMD >/dev/null 2>&1 || FIREJAIL_CMD=
fi
BASE_CMD="$AS_USER /bin/true"

# median_ms NAME CMD: prints the median in milliseconds.
median_ms() {
    if command -v hyperfine >/dev/null 2>&1; then
        hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WS/$1.json" "$2" >/dev/null 2>&1
        python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$WS/$1.json"
    else
        i=0; : > "$WS/$1.txt"
        while [ $i -lt "$RUNS" ]; do
            s=$(date +%s%N); $2 >/dev/null 2>&1; e=$(date +%s%N)
            echo $(( (e - s) )) >> "$WS/$1.txt"; i=$((i + 1))
        done
        sort -n "$WS/$1.txt" | python3 -c 'import sys,statistics; v=[int(x) for x in sys.stdin]; print("%.2f" % (statistics.median(v)/1e6))'
    fi
}

echo "oz sandbox start-up: /bin/true, median of $RUNS runs ($(uname -r), $(nproc) cpus)"
echo "  oz-agent: $AGENT"
BASE=$(median_ms base "$BASE_CMD")
OZ=$(median_ms oz "$OZ_CMD")
BW=$(median_ms bwrap "$BWRAP_CMD")
printf '  %-46s %8s ms\n' "no sandbox (setpriv /bin/true)" "$BASE"
printf '  %-46s %8s ms\n' "oz-agent standalone (strict profile)" "$OZ"
printf '  %-46s %8s ms\n' "bwrap $(bwrap --version | cut -d' ' -f2) desktop flags, as $BWRAP_AS" "$BW"
if [ -n "$FIREJAIL_CMD" ]; then
    FJ=$(median_ms firejail "$FIREJAIL_CMD")
    printf '  %-46s %8s ms\n' "firejail --noprofile" "$FJ"
else
    echo "  firejail: not installed (apt-get install -y firejail)"
fi
python3 -c 'import sys; print("  ratio oz/bwrap: %.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$OZ" "$BW"
leftover=$(find "$WS/state" "$WS/sandbox" -mindepth 1 | head -1)
[ -z "$leftover" ] || { echo "startup.sh: the sandboxes left $leftover behind" >&2; exit 1; }
