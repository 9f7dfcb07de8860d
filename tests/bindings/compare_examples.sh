#!/usr/bin/env bash
# One example, four languages: the C++, Python, Rust and Go examples train
# with the same seed and settings and must print identical lines (losses,
# metrics, reloaded metrics, top-5). Languages whose toolchain is missing
# are left out; fewer than two is a skip.
set -u
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
src=$RECSYS_SOURCE_ROOT
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ran=()
fail=0
run() { # name, command...
  local name=$1; shift
  if "$@" "$tmp/$name.ckpt" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
    ran+=("$name")
  else
    echo "$name example failed:"; cat "$tmp/$name.err"; fail=1
  fi
}
[ -n "${EXAMPLE_CPP:-}" ] && [ -x "$EXAMPLE_CPP" ] && run cpp "$EXAMPLE_CPP"
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3 || true)
if [ -n "$py" ] && "$py" -c 'import numpy' 2>/dev/null; then
  run python env PYTHONPATH="$src/bindings/python" "$py" -B "$src/bindings/python/examples/example.py"
fi
if command -v cargo >/dev/null 2>&1; then
  command -v pkg-config >/dev/null 2>&1 || export LIBRECSYS_LIB_DIR="$RECSYS_BUILD_ROOT/lib"
  (cd "$src/bindings/rust" && CARGO_TARGET_DIR="$RECSYS_BUILD_ROOT/rust-target" \
     cargo build --offline -q --example example) && \
    run rust "$RECSYS_BUILD_ROOT/rust-target/debug/examples/example"
fi
if command -v go >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1; then
  export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
  export GOCACHE="$RECSYS_BUILD_ROOT/go/cache" GOPATH="$RECSYS_BUILD_ROOT/go/path"
  (cd "$src/bindings/go" && go build -o "$tmp/goexample" ./cmd/example) && run go "$tmp/goexample"
fi
[ $fail = 0 ] || { echo "0 passed, 1 failed"; exit 1; }
[ ${#ran[@]} -ge 2 ] || { echo "SKIP: fewer than two example languages available (${ran[*]:-none})"; exit 77; }
ref=${ran[0]}
cat "$tmp/$ref.out"
for name in "${ran[@]:1}"; do
  if ! diff -u "$tmp/$ref.out" "$tmp/$name.out"; then
    echo "$name prints differently from $ref"; fail=1
  fi
done
echo "compared: ${ran[*]}"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
