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
  libopenblas-dev libopenblas0 \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
  libyaml-dev:arm64 zlib1g-dev:arm64 libcmocka-dev:arm64 >/dev/null
