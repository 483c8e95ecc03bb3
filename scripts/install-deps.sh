#!/usr/bin/env bash
# Installs every Debian package (and npm package for browser tests) the project needs.
# Non-interactive and idempotent: safe to run on every build. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev libuv1-dev libraft-dev libdqlite-dev libsqlite3-dev libh2o-dev
  libprotobuf-c-dev protobuf-c-compiler libwebsockets-dev libwebsockets-evlib-uv
  libjansson-dev libsodium-dev libcmocka-dev
  libavformat-dev libavcodec-dev libswscale-dev libswresample-dev libavutil-dev
  ffmpeg go-dqlite wrk iproute2 curl python3 chromium openssl
  gstreamer1.0-tools gstreamer1.0-plugins-good
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# Node.js ships its own npm on these machines; Debian's npm package conflicts with it, so
# only fall back to Debian's nodejs when there is no node at all.
if ! command -v node >/dev/null 2>&1; then
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q nodejs npm
fi

# Browser-test packages live in tests/browser (package.json + lock); installed there, never a
# browser download (Debian's chromium is used).
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$here/tests/browser/package.json" ] && [ ! -d "$here/tests/browser/node_modules/hls.js" ]; then
  (cd "$here/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
