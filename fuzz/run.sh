#!/usr/bin/env bash
# Run every fuzz target for N seconds each (default 60). Needs cargo-fuzz (installed if missing);
# the stable toolchain is told to accept the sanitizer flags with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for t in profile_loader policy_parser frame_decoder; do
  mkdir -p "corpus/$t"
  case $t in
    profile_loader) cp -n ../../shared/compat/oz-profiles/*.json "corpus/$t/" 2>/dev/null || true ;;
    policy_parser) cp -n ../../shared/compat/oz-profiles/*.seccomp "corpus/$t/" 2>/dev/null || true ;;
    frame_decoder) cp -n ../wire/tests/fixtures/*.bin "corpus/$t/" 2>/dev/null || true ;;
  esac
  echo "== fuzz $t for ${secs}s"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
done
echo "fuzz: all targets ran ${secs}s without a crash"
