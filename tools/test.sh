#!/usr/bin/env bash
# The whole test suite: every test with the best kernels, again with the ISA
# capped to AVX2 and to scalar (so each dispatch path is exercised on an
# AVX-512 machine), then once more built with ASan + UBSan (with the
# allocation-failure injection suite), the concurrency test under TSan, a
# short run of every fuzz harness and the resource-limit checks. The
# bindings' suites (Python, C++, Rust, Go, the four-language example) are
# meson tests too. Last, a cross build for aarch64 (scalar kernels only)
# runs its suite under qemu-user. RECSYS_CRASH_TRIALS, RECSYS_FUZZ_SECONDS set the long
# modes (docs/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
summary=()
run() { # name, meson test args...
  local name=$1; shift
  local log
  set +e
  meson test --print-errorlogs "$@"
  local rc=$?
  set -e
  log=$(ls -t "${@: -1}"/meson-logs/testlog*.json 2>/dev/null | head -n1 || true)
  summary+=("$name: $(/usr/bin/env python3 - "$log" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK": ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
PY
)")
  [ $rc -eq 0 ] || { printf '%s\n' "${summary[@]}"; echo "FAILED: $name"; exit $rc; }
}
run default -C build
# Install into a scratch prefix and build the example the way a user would.
inst=$(mktemp -d)
DESTDIR=$inst meson install -C build --quiet >/dev/null
pcdir=$(dirname "$(find "$inst" -name librecsys.pc)")
sed -i "s|^prefix=|prefix=$inst|" "$pcdir/librecsys.pc"
cc examples/minimal.c $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs librecsys) -o "$inst/minimal"
LD_LIBRARY_PATH=$(dirname "$pcdir") "$inst/minimal" >/dev/null
rm -rf "$inst"
summary+=("install: 1 passed, 0 failed (pkg-config build of examples/minimal.c)")
run avx2 --setup avx2 -C build
run scalar --setup scalar -C build
if [ "${RECSYS_SKIP_SANITIZERS:-0}" != 1 ]; then
  # The ASan build is also the fault-injection build: its allocations go
  # through a counter (idle unless tests/test_fault.c arms it), and the
  # suite 'fault' fails the N-th allocation for every N (docs/TESTING.md).
  [ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined \
      -Dbuildtype=debugoptimized -Db_lundef=false -Dbench=disabled -Dfault_injection=true >/dev/null
  meson configure build-asan -Dfault_injection=true >/dev/null
  ninja -C build-asan >/dev/null
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    run sanitizers --no-suite python --no-suite bindings -C build-asan
fi
# ThreadSanitizer: the concurrency test (shared model, per-thread ctx and
# session, parallel evaluation) in a TSan build of the library.
if [ "${RECSYS_SKIP_TSAN:-0}" != 1 ]; then
  [ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread \
      -Dbuildtype=debugoptimized -Db_lundef=false -Dbench=disabled >/dev/null
  ninja -C build-tsan tests/test_concurrency >/dev/null
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run tsan --no-rebuild --suite concurrency -C build-tsan
fi
# Fuzzing, short: every libFuzzer harness for RECSYS_FUZZ_SECONDS (10) each,
# when clang is installed (long campaigns: docs/TESTING.md).
if [ "${RECSYS_SKIP_FUZZ:-0}" != 1 ]; then
  if command -v clang >/dev/null; then
    fuzz_log=$(mktemp)
    fuzz/run.sh "${RECSYS_FUZZ_SECONDS:-10}" | tee "$fuzz_log"
    summary+=("fuzz: $(grep -c '^fuzz_.*nothing found$' "$fuzz_log") harnesses, ${RECSYS_FUZZ_SECONDS:-10} s each, nothing found")
    rm -f "$fuzz_log"
  else
    summary+=("fuzz: skipped (clang is not installed)")
  fi
fi
# Limits: configs over an address-space limit fail early with the estimate;
# a 1 GiB line, a FIFO, /dev/zero and deep YAML are refused within seconds.
tests/limits_test.sh build/examples/recsys
summary+=("limits: 1 passed (ulimit -v, 1 GiB line, FIFO, /dev/zero, deep YAML)")
# aarch64: the library must configure, build and pass with the scalar kernels
# alone. Skipped only when the cross compiler is missing; meson test runs the
# binaries through the cross file's exe_wrapper (qemu-aarch64). The python
# suite loads the library into the host's python, so it stays out.
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  [ -f build-aarch64/build.ninja ] || meson setup build-aarch64 \
      --cross-file tools/cross/aarch64-linux-gnu.ini -Donednn=disabled -Dbench=disabled >/dev/null
  ninja -C build-aarch64 >/dev/null
  run aarch64 --no-suite python --no-suite pybindings --no-suite bindings --no-suite crash -C build-aarch64
else
  summary+=("aarch64: skipped (no aarch64-linux-gnu-gcc; tools/deps.sh installs it)")
fi
printf '%s\n' "${summary[@]}"
