#!/usr/bin/env bash
# A real S3-compatible server for the recorder's upload tests: moto's server from PyPI, pinned,
# in a venv in the cache (outside the repo; idempotent: nothing happens when it is there).
# The tests start it themselves (`moto_server -H 127.0.0.1 -p <free port>`) and find it at
# $CONVENE_MOTO_SERVER or, by default, at the path this script prints.
#   scripts/s3-server.sh            install (if missing) and print the moto_server path
set -euo pipefail
MOTO_VERSION=5.2.5
cache="${CONVENE_CACHE:-$HOME/.cache/convene}"
venv="$cache/moto-$MOTO_VERSION"
if [ ! -f "$venv/.installed" ]; then
  command -v python3 >/dev/null || { echo "s3-server: python3 is required" >&2; exit 1; }
  echo "s3-server: installing moto[server]==$MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    || { rm -rf "$venv"; exit 1; }
  touch "$venv/.installed"
fi
echo "$venv/bin/moto_server"
