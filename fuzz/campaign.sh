#!/usr/bin/env bash
# A long fuzz campaign: RUNS executions of each harness (default 10 million),
# each continuing from its corpus in build-fuzz-fast/campaign/<harness>
# (seeded from fuzz/corpus/), then every input of that corpus replayed once
# under AddressSanitizer. The campaign build has UBSan only: ASan halves the
# execution rate or worse on small inputs, so memory errors are caught by the
# replay of everything the campaign found interesting rather than live.
# Writes a table of figures to build-fuzz-fast/campaign/summary.md.
#   [MAX_LEN=bytes] fuzz/campaign.sh [RUNS] [harness ...]   (MAX_LEN: largest input, 65536)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(interactions sequences yaml checkpoint perflaw_csv
                                         adapter_store safetensors request user_state)
command -v clang >/dev/null || { echo "campaign needs clang"; exit 1; }
[ -f build-fuzz-fast/build.ninja ] || CC=clang meson setup build-fuzz-fast -Dfuzzing=true \
    -Db_sanitize=undefined -Db_lundef=false -Dbuildtype=release \
    -Dbench=disabled -Dtests=disabled >/dev/null
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzzing=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dbench=disabled -Dtests=disabled >/dev/null
ninja -C build-fuzz-fast >/dev/null
ninja -C build-fuzz >/dev/null
out=build-fuzz-fast/campaign
mkdir -p "$out/artifacts"
sum=$out/summary.md
for h in "${harnesses[@]}"; do
  seeds=fuzz/corpus/${h/perflaw_fit/perflaw_csv}
  mkdir -p "$out/$h"
  start=$(date +%s)
  set +e
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    build-fuzz-fast/fuzz/fuzz_$h "$out/$h" "$seeds" -runs="$runs" -max_len="${MAX_LEN:-65536}" \
    -rss_limit_mb=2048 -timeout=20 -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/${h}-" > "$out/$h.log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$out/$h.log")
  n_corpus=$(ls "$out/$h" | wc -l)
  # Replay the whole corpus once under ASan + UBSan (-runs=0: inputs only).
  set +e
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    build-fuzz/fuzz/fuzz_$h -runs=0 -rss_limit_mb=2048 -timeout=20 -close_fd_mask=3 \
    -artifact_prefix="$out/artifacts/${h}-asan-" "$out/$h" > "$out/$h.asan.log" 2>&1
  arc=$?
  set -e
  verdict="nothing found"
  [ $rc -eq 0 ] || verdict="FOUND (campaign exit $rc, see $out/$h.log)"
  [ $arc -eq 0 ] || verdict="$verdict; ASan replay FAILED ($out/$h.asan.log)"
  line="| fuzz_$h | $execs | $secs s | $(( execs / (secs > 0 ? secs : 1) ))/s | $n_corpus | $verdict |"
  echo "$line" | tee -a "$sum"
done
