#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan + UBSan) and run each for
# SECONDS (default 10) from the committed seed corpus. New inputs go to a
# temp dir; a crash is copied to build-fuzz/artifacts/ and fails the run.
# Long campaigns: fuzz/run.sh 3600 (docs/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v clang >/dev/null || { echo "SKIP fuzz: clang is not installed"; exit 0; }
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzzing=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dbench=disabled -Dtests=disabled >/dev/null
ninja -C build-fuzz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for h in interactions sequences yaml checkpoint perflaw_csv perflaw_fit adapter_store adapter_file safetensors request user_state; do
  [ -x "build-fuzz/fuzz/fuzz_$h" ] || { echo "skip fuzz_$h (not built: needs jansson)"; continue; }
  seeds=fuzz/corpus/${h/perflaw_fit/perflaw_csv}
  mkdir -p "$work/$h" "$work/art_$h"
  set +e
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    build-fuzz/fuzz/fuzz_$h "$work/$h" "$seeds" -max_total_time="$secs" \
    -max_len=65536 -rss_limit_mb=2048 -timeout=20 -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$work/art_$h/" > "$work/$h.log" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    tail -n 60 "$work/$h.log"
    mkdir -p build-fuzz/artifacts
    cp "$work/art_$h"/* build-fuzz/artifacts/ 2>/dev/null || true
    echo "FAILED: fuzz_$h (artifacts in build-fuzz/artifacts/)"
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$h.log")
  echo "fuzz_$h: $execs executions in ${secs} s, nothing found"
done
