#!/usr/bin/env bash
# Installs what librecsys needs to build, test and benchmark on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential meson ninja-build pkg-config python3 \
  libyaml-dev zlib1g-dev libcmocka-dev libdnnl-dev \
  libopenblas-dev libopenblas0 \
  clang >/dev/null  # clang: libFuzzer for fuzz/
