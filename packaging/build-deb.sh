#!/usr/bin/env bash
# Build oz_<version>_amd64.deb with dpkg-deb, offline.
#   bash packaging/build-deb.sh [OUTDIR]        (default OUTDIR: target/deb)
# Binaries come from a release build (cargo build --release --locked), or from $OZ_BIN_DIR when
# set (e.g. OZ_BIN_DIR=target/debug to package what is already built). The package holds
# oz (/usr/bin), oz-setup, oz-daemon, oz-agent (/usr/sbin), /etc/oz/oz.conf, the generic seccomp
# blacklist /etc/oz/blacklist-generic.seccomp, the shipped profiles in /var/lib/oz/cells.d, the
# systemd units, an init script for machines without systemd, man pages and bash/zsh/fish
# completions generated from the clap definitions. OZ_DEB_VERSION overrides the package version
# (default: the workspace version in Cargo.toml), e.g. to build an upgrade of an installed oz.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
out=$(realpath -m "${1:-target/deb}")
version=${OZ_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}
[ -n "$version" ] || { echo "build-deb.sh: no version in Cargo.toml" >&2; exit 1; }
case "$version" in
[0-9]*) ;;
*) echo "build-deb.sh: version $version must start with a digit" >&2; exit 1 ;;
esac
if [ -n "${OZ_BIN_DIR:-}" ]; then
  bins=$(realpath "$OZ_BIN_DIR")
  cargo build --locked -p oz-packaging >&2
  gen=target/debug/oz-gen-assets
else
  cargo build --release --locked -p oz-cli -p oz-supervisor -p oz-agent -p oz-packaging >&2
  bins=target/release
  gen=target/release/oz-gen-assets
fi
for b in oz oz-setup oz-daemon oz-agent; do
  [ -x "$bins/$b" ] || { echo "build-deb.sh: $bins/$b missing" >&2; exit 1; }
done

stage=$(mktemp -d /tmp/oz-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/oz_${version}_amd64"
assets="$stage/assets"
"$gen" "$assets"

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/sbin" "$root/etc/oz" "$root/var/lib/oz/cells.d" \
  "$root/lib/systemd/system" "$root/etc/init.d" "$root/usr/share/man/man1" "$root/usr/share/man/man8" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/oz"
install -m 0755 "$bins/oz" "$root/usr/bin/oz"
for b in oz-setup oz-daemon oz-agent; do install -m 0755 "$bins/$b" "$root/usr/sbin/$b"; done
strip --strip-debug "$root/usr/bin/oz" "$root"/usr/sbin/* 2>/dev/null || true
install -m 0644 packaging/oz.conf "$root/etc/oz/oz.conf"
install -m 0644 "$assets/blacklist-generic.seccomp" "$root/etc/oz/blacklist-generic.seccomp"
install -m 0644 profiles/cells.d/*.json "$root/var/lib/oz/cells.d/"
install -m 0755 packaging/sysvinit/oz-daemon "$root/etc/init.d/oz-daemon"
install -m 0644 packaging/systemd/oz-daemon.service packaging/systemd/oz-daemon.socket "$root/lib/systemd/system/"
for page in "$assets"/man/*; do
  section=${page##*.}
  gzip -9n -c "$page" > "$root/usr/share/man/man$section/$(basename "$page").gz"
done
for f in "$assets"/completions/bash/*; do install -m 0644 "$f" "$root/usr/share/bash-completion/completions/"; done
for f in "$assets"/completions/zsh/*; do install -m 0644 "$f" "$root/usr/share/zsh/vendor-completions/"; done
for f in "$assets"/completions/fish/*; do install -m 0644 "$f" "$root/usr/share/fish/vendor_completions.d/"; done
install -m 0644 README.md "$root/usr/share/doc/oz/README.md"

sed "s/@VERSION@/$version/" packaging/debian/control > "$root/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)" >> "$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done

mkdir -p "$out"
deb="$out/oz_${version}_amd64.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
