#!/usr/bin/env bash
# Install the Debian 12 packages swarmd builds and tests with, if any is missing.
# Usage: tests/deps.sh [--fuzz]   (--fuzz adds clang's libFuzzer runtime)
set -euo pipefail
pkgs=(gcc meson ninja-build pkg-config libssl-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler
      libraft-dev liblmdb-dev libseccomp-dev libcmocka-dev openssl python3 procps
      golang-cfssl) # the external CA test signs through a real cfssl serve
[ "${1:-}" = --fuzz ] && pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "swarmd: missing packages: ${missing[*]} — run as root or install them with apt-get" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
