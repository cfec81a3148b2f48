#!/usr/bin/env bash
# CI's short fuzz run: every target under AFL++ for CONVENE_FUZZ_SMOKE_S seconds (default 30),
# failing on any crash or hang. The long campaigns are `fuzz/run.sh TARGET` (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${CONVENE_FUZZ_SMOKE_S:-30}
# Apart from the campaigns' findings (fuzz/run.sh empties its output directory first).
export CONVENE_FUZZ_OUT="${CONVENE_CACHE:-$HOME/.cache/convene}/fuzz/smoke"
for t in $(fuzz/run.sh --list); do
  fuzz/run.sh "$t" "$seconds" 100000000
done
