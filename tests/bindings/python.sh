#!/usr/bin/env bash
# The Python package's pytest suite against the library of this build
# (LIBRECSYS_PATH). With an ASan build, libasan is preloaded into Python.
set -u
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
[ -n "$py" ] && "$py" -c 'import pytest, numpy' 2>/dev/null || { echo "SKIP: python3 with pytest and numpy needed"; exit 77; }
cd "$RECSYS_SOURCE_ROOT/bindings/python"
if ldd "$LIBRECSYS_PATH" 2>/dev/null | grep -q libasan; then
  export LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  # CPython itself leaks by design and is not built with ASan.
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi
exec "$py" -B -m pytest -q -p no:cacheprovider tests
