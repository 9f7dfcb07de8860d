#!/usr/bin/env bash
# cargo test --offline of bindings/rust (librecsys-sys + librecsys) against
# the library of this build: pkg-config reads meson-uninstalled/ (set by
# meson in PKG_CONFIG_PATH) and LD_LIBRARY_PATH finds the .so at run time.
set -eu
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
command -v cargo >/dev/null 2>&1 || { echo "SKIP: cargo not found"; exit 77; }
command -v pkg-config >/dev/null 2>&1 || export LIBRECSYS_LIB_DIR="$RECSYS_BUILD_ROOT/lib"
export CARGO_TARGET_DIR="$RECSYS_BUILD_ROOT/rust-target"
cd "$RECSYS_SOURCE_ROOT/bindings/rust"
cargo --version
cargo test --offline -j "${RECSYS_CARGO_JOBS:-2}"
echo "1 passed, 0 failed"
