#!/usr/bin/env bash
# go test of bindings/go (cgo, #cgo pkg-config: librecsys) against the
# library of this build, offline, with caches inside the build directory.
set -eu
command -v go >/dev/null 2>&1 || { echo "SKIP: go not found"; exit 77; }
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: pkg-config not found (cgo needs it)"; exit 77; }
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
export GOCACHE="$RECSYS_BUILD_ROOT/go/cache" GOPATH="$RECSYS_BUILD_ROOT/go/path"
cd "$RECSYS_SOURCE_ROOT/bindings/go"
go version
go vet ./...
go test -count=1 ./...
echo "1 passed, 0 failed"
