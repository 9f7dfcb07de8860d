#!/usr/bin/env bash
# Installs what librecsys needs to build, test and benchmark on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# arm64 -dev packages for the aarch64 cross build (tools/cross/), via multiarch
dpkg --add-architecture arm64
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential meson ninja-build pkg-config python3 \
  libyaml-dev zlib1g-dev libcmocka-dev libdnnl-dev \
  libopenblas-dev libopenblas0 libmicrohttpd-dev libjansson-dev wrk \
  g++ python3-numpy python3-pytest python3-cffi python3-pip python3-setuptools python3-torch \
  cargo rustc golang-go \
  openmpi-bin libopenmpi-dev \
  clang \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
  libyaml-dev:arm64 zlib1g-dev:arm64 libcmocka-dev:arm64 >/dev/null
# clang: libFuzzer for fuzz/. The aarch64 cross compiler, qemu-user and the
# arm64 libraries (multiarch) build and test the scalar path on aarch64.
# The bindings' toolchains (tests/bindings/*.sh): g++ for recsys.hpp, the
# Python suite (pytest, numpy, cffi; torch for the PyTorch round trip of
# tests/test_pytorch_roundtrip.py, which uses the system OpenBLAS), Rust (Debian 12: rustc 1.63, std only)
# and Go (Debian 12: go 1.19, cgo). Each suite skips when its toolchain is absent.
