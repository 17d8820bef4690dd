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
# How long each phase took, printed before the summary.
times=()
phase() { times+=("$1 $((SECONDS - phase_start))s"); phase_start=$SECONDS; }
phase_start=$SECONDS
bash scripts/deps.sh build || exit 1
export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The other packages and tools install while the workspace builds.
dlog=$(mktemp /tmp/oz-deps.XXXXXX.log)
bash scripts/deps.sh > "$dlog" 2>&1 &
deps_pid=$!
cargo build --workspace --all-targets --locked || { wait "$deps_pid"; exit 1; }
phase build
if ! wait "$deps_pid"; then
  cat "$dlog"
  echo "test.sh: installing the dependencies failed (see above)" >&2
  exit 1
fi
rm -f "$dlog"
phase "rest of deps"
cargo machete || { echo "test.sh: unused dependencies (see above)" >&2; exit 1; }
cargo fmt --all --check >/dev/null || { cargo fmt --all --check | head -40; echo "test.sh: code not formatted (cargo fmt --all)" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings || { echo "test.sh: clippy warnings (see above)" >&2; exit 1; }
phase "machete, fmt, clippy"
log=$(mktemp /tmp/oz-test.XXXXXX.log)
cargo test --workspace --locked --no-fail-fast -- --test-threads="${OZ_TEST_THREADS:-2}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
read -r passed failed ignored < <(awk '/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) g += $(i-1)
  }
} END { print p+0, f+0, g+0 }' "$log")
rm -f "$log"
phase tests
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
    # What libFuzzer said of the failure, and the input itself when it is small enough.
    grep -E -A3 '^(==[0-9]+== ERROR|SUMMARY|thread .* panicked|Base64: |fuzz: .* FAILED|error)' "$flog" | head -n 80
    echo "test.sh: fuzzing failed (crashing inputs in fuzz/artifacts/)" >&2
  fi
  grep -E '^(fuzz: |stat::number_of_executed_units)' "$flog"
  rm -f "$flog"
  phase fuzzing
  passed=$((passed + fuzz_ok)); failed=$((failed + fuzz_failed))
else
  echo "test.sh: fuzzing skipped (OZ_FUZZ_SECS=0)" >&2
  ignored=$((ignored + fuzz_targets))
fi
echo "test.sh: times: $(printf '%s; ' "${times[@]}")"
echo "oz: ${passed} passed, ${failed} failed, ${ignored} skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$ignored" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
