#!/usr/bin/env bash
# Run the whole oz test suite as root: unused dependencies (cargo machete), formatting (cargo
# fmt), clippy with -D warnings, unit tests, the profile corpus, the escape suite and the daemon
# end-to-end tests, then every fuzz target for
# $OZ_FUZZ_SECS seconds each (default 45; each target counts as one test, 0 skips them and so
# fails). Idempotent. Prints one summary line at the end and fails on any failed or ignored test
# (a skipped test counts as a failure), any fuzz crash, or an unused dependency.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: must run as root (the suite builds real sandboxes)" >&2; exit 1; }
bash scripts/deps.sh || exit 1
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
cargo build --workspace --all-targets --locked || exit 1
cargo machete || { echo "test.sh: unused dependencies (see above)" >&2; exit 1; }
cargo fmt --all --check >/dev/null || { cargo fmt --all --check | head -40; echo "test.sh: code not formatted (cargo fmt --all)" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings || { echo "test.sh: clippy warnings (see above)" >&2; exit 1; }
log=$(mktemp /tmp/oz-test.XXXXXX.log)
cargo test --workspace --locked --no-fail-fast -- --test-threads="${OZ_TEST_THREADS:-2}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
read -r passed failed ignored < <(awk '/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) g += $(i-1)
  }
} END { print p+0, f+0, g+0 }' "$log")
rm -f "$log"
fuzz_secs=${OZ_FUZZ_SECS:-45}
fuzz_targets=$(grep -c '^\[\[bin\]\]' fuzz/Cargo.toml)
if [ "$fuzz_secs" -gt 0 ]; then
  flog=$(mktemp /tmp/oz-fuzz.XXXXXX.log)
  bash fuzz/run.sh "$fuzz_secs" > "$flog" 2>&1
  fuzz_status=$?
  fuzz_ok=$(grep -c '^fuzz: .* ok$' "$flog")
  fuzz_failed=$(grep -c '^fuzz: .* FAILED' "$flog")
  [ "$fuzz_status" -eq 0 ] || [ "$fuzz_failed" -gt 0 ] || fuzz_failed=1
  if [ "$fuzz_status" -ne 0 ]; then
    tail -n 60 "$flog"
    echo "test.sh: fuzzing failed (crashing inputs in fuzz/artifacts/)" >&2
  fi
  grep -E '^(fuzz: |stat::number_of_executed_units)' "$flog"
  rm -f "$flog"
  passed=$((passed + fuzz_ok)); failed=$((failed + fuzz_failed))
else
  echo "test.sh: fuzzing skipped (OZ_FUZZ_SECS=0)" >&2
  ignored=$((ignored + fuzz_targets))
fi
echo "oz: ${passed} passed, ${failed} failed, ${ignored} skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$ignored" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
