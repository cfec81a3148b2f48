#!/usr/bin/env bash
# Installs what building and testing Convene needs on a fresh Debian machine, idempotently:
# Debian packages only when missing; coturn because the TURN tests run the real relay; ffmpeg
# because the recorder tests encode real VP8/Opus and judge the WebM with ffprobe/ffmpeg;
# fonts-dejavu-core for the names in the composed recording; python3-venv for moto, the real
# S3 server the upload tests run (scripts/s3-server.sh, a pinned venv in the cache). (The
# cluster tier installs its own tools:
# e2e/cluster/install-tools.sh.)
set -euo pipefail
need=()
for pkg in build-essential cmake pkg-config iproute2 util-linux curl coturn ffmpeg fonts-dejavu-core python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: Rust (cargo) is required" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
"$(dirname "$0")/s3-server.sh" >/dev/null
