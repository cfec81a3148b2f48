#!/usr/bin/env bash
# Builds this worktree's operator (and bridge) and copies them aside, so a build of another
# worktree into the shared CARGO_TARGET_DIR cannot swap the binary under a cluster test run.
# Prints the directory; use it as CONVENE_OPERATOR_BIN=<dir>/convene-operator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build -p convene-operator --bin convene-operator >&2
out=$(mktemp -d "${TMPDIR:-/tmp}/convene-op-bin.XXXXXX")
cp "$target/debug/convene-operator" "$out/"
[ -x "$target/debug/convene-bridge" ] && cp "$target/debug/convene-bridge" "$out/" || true
echo "$out"
