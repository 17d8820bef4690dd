#!/usr/bin/env bash
# Run every fuzz target for N seconds each (default 60; scripts/test.sh passes $OZ_FUZZ_SECS).
# Needs cargo-fuzz (scripts/deps.sh installs it); the stable toolchain is told to accept the
# sanitizer flags with RUSTC_BOOTSTRAP=1. Prints one line per target, `fuzz: TARGET ok` or
# `fuzz: TARGET FAILED` (the crashing input is kept in fuzz/artifacts/TARGET/), and exits
# non-zero when any target crashed or did not build. An input that runs for more than 10 s
# counts as a crash (a hang). Inputs that once failed are kept in seeds/TARGET/ and start
# every run. The random seed is fixed ($OZ_FUZZ_SEED, default 1), so that a test run's verdict
# depends on the code and not on luck: a run explores the same inputs as long as it has time.
# New inputs come from longer runs with other seeds (OZ_FUZZ_SEED=0 picks one at random).
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz || exit 1
export RUSTC_BOOTSTRAP=1
# Leaks inside libseccomp are suppressed (lsan.supp); any other leak still fails a target.
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
targets=(profile_loader policy_parser frame_decoder agent_messages)
if ! cargo fuzz build; then
  for t in "${targets[@]}"; do echo "fuzz: $t FAILED (build)"; done
  exit 1
fi
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  [ -d "seeds/$t" ] && cp -n "seeds/$t"/* "corpus/$t/"
  case $t in
    profile_loader) cp -n ../../shared/compat/oz-profiles/*.json "corpus/$t/" 2>/dev/null || true ;;
    policy_parser) cp -n ../../shared/compat/oz-profiles/*.seccomp "corpus/$t/" 2>/dev/null || true ;;
    frame_decoder | agent_messages) cp -n ../wire/tests/fixtures/*.bin "corpus/$t/" 2>/dev/null || true ;;
  esac
  echo "== fuzz $t for ${secs}s"
  if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -seed="${OZ_FUZZ_SEED:-1}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1; then
    echo "fuzz: $t ok"
  else
    echo "fuzz: $t FAILED"
    status=1
  fi
done
exit $status
