#!/usr/bin/env bash
# The operator at 100 Shards (benchmark, not a test): builds this worktree's operator and the
# baseline's (a git rev, default the last commit before the shared watches), then runs
# e2e/tests/scale.rs on a fresh cluster, which measures both in the same run and prints
# figures with ratios.
#
#   e2e/cluster/bench-scale.sh [baseline-rev]
#   CONVENE_BENCH_SHARDS=20 CONVENE_BENCH_WINDOW=30 e2e/cluster/bench-scale.sh   # quicker
#   CONVENE_BENCH_PROFILE=release e2e/cluster/bench-scale.sh   # both operators as shipped
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CONVENE_CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CONVENE_CACHE/target}
profile=${CONVENE_BENCH_PROFILE:-dev}
outdir=$([ "$profile" = dev ] && echo debug || echo "$profile")
rev=${1:-$(git log --format=%H -1 --grep='^operator: one watch per kind' | xargs -r -I{} git rev-parse {}^)}
[ -n "$rev" ] || rev=HEAD

# The baseline in a throwaway worktree; its sources are touched so cargo (sharing the target
# dir) rebuilds it rather than reusing this worktree's artifacts, and likewise ours after.
base=$(mktemp -d "${TMPDIR:-/tmp}/convene-baseline.XXXXXX")
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || rm -rf "$base"' EXIT
git worktree add --detach "$base" "$rev" >/dev/null
find "$base/proto" "$base/operator" -name '*.rs' -exec touch {} +
(cd "$base" && cargo build --profile "$profile" -p convene-operator --bin convene-operator >&2)
mkdir -p "$base/bin" && cp "$CARGO_TARGET_DIR/$outdir/convene-operator" "$base/bin/"
find proto operator -name '*.rs' -exec touch {} +
cargo build --profile "$profile" -p convene-operator --bin convene-operator >&2
mkdir -p "$base/ours" && cp "$CARGO_TARGET_DIR/$outdir/convene-operator" "$base/ours/"
cargo build -p convene-e2e --test scale >&2

echo "baseline: $(git log --oneline -1 "$rev")"
CONVENE_BASELINE_OPERATOR_BIN="$base/bin/convene-operator" CONVENE_OPERATOR_BIN="$base/ours/convene-operator" \
  e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test scale -- --ignored --nocapture
