#!/usr/bin/env bash
# Set oz up on this machine and run a demo sandbox. Idempotent: a second run rebuilds, reinstalls,
# restarts the daemon (running sandboxes survive a daemon restart) and runs the demo again.
#
#   installs  /usr/local/bin/{oz,oz-setup,oz-daemon,oz-agent}, /etc/oz/oz.conf (if missing),
#             /var/lib/oz/cells.d/ (the demo profile, plus the original Oz corpus when found)
#   starts    oz-daemon (pid in /run/oz/oz-daemon.pid, log in /var/log/oz/)
#   runs      `oz run demo` as the unprivileged user oz-demo (created if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: must run as root" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

bash scripts/deps.sh
cargo build --release --locked --bins
for b in oz oz-setup oz-daemon oz-agent; do
  install -m 0755 -o root -g root "target/release/$b" "/usr/local/bin/$b.new"
  mv -f "/usr/local/bin/$b.new" "/usr/local/bin/$b"
done

install -d -m 0755 -o root -g root /etc/oz /var/lib/oz /var/lib/oz/cells.d
# Logs hold program output: root's alone (the daemon checks and repairs this at start-up).
install -d -m 0700 -o root -g root /var/log/oz
chmod 0700 /var/log/oz
[ -e /etc/oz/oz.conf ] || printf '{\n  "prefix_path": "/usr/local"\n}\n' >/etc/oz/oz.conf
chown root:root /etc/oz/oz.conf && chmod 0644 /etc/oz/oz.conf
cat >/var/lib/oz/cells.d/demo.json <<'EOF'
{
  "name": "demo",
  "path": "/bin/sh",
  "networking": {"type": "empty"},
  "seccomp": {"mode": "blacklist", "enforce": true},
  "whitelist": [{"path": "${HOME}/oz-demo-notes", "can_create": true}],
  "limits": {"pids": 64, "memory": "256M"}
}
EOF
corpus=../shared/compat/oz-profiles
if [ -d "$corpus" ]; then
  install -m 0644 -o root -g root "$corpus"/*.json "$corpus"/*.seccomp /var/lib/oz/cells.d/
fi
oz-setup config check

# (Re)start the daemon; sandboxes of a previous daemon keep running and are re-adopted.
pidfile=/run/oz/oz-daemon.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
install -d -m 0755 /run/oz
(umask 077; touch /var/log/oz/oz-daemon.stderr; chmod 0600 /var/log/oz/oz-daemon.stderr)
setsid oz-daemon </dev/null >>/var/log/oz/oz-daemon.stderr 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 100); do [ -S /run/oz/control.sock ] && oz profiles >/dev/null 2>&1 && break; sleep 0.1; done
echo "oz-daemon running (pid $(cat "$pidfile")); profiles:"
oz profiles

id oz-demo >/dev/null 2>&1 || useradd --create-home --shell /bin/sh oz-demo
echo
echo "== oz run demo, as oz-demo: the same commands inside the sandbox"
runuser -u oz-demo -- env -C /tmp oz run demo -- -c '
  echo "user:      $(id)"
  echo "hostname:  $(hostname)"
  echo "processes: $(ls -d /proc/[0-9]* | wc -l) visible"
  grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | tr "\n" " "; echo
  echo "network:   $(ls /sys/class/net | tr "\n" " ")"
  cat /etc/shadow >/dev/null 2>&1 && echo "/etc/shadow: READABLE" || echo "/etc/shadow: not readable"
  echo "home:      $(ls -A ~ | tr "\n" " ")"
'
echo
echo "oz is set up: try 'oz profiles', 'oz launch demo -- -c \"sleep 60\"', 'oz list', 'oz shell ID', 'oz logs -f'"
