#!/usr/bin/env bash
# The whole test suite, every tier, as CI runs it (.ci/run calls this script):
#   1. format, lint and the CRDs-in-sync check; the operations kit (promtool rule tests,
#      dashboard queries, the chart's monitoring objects: ops/)
#   2. unit and integration tests (cargo test, with the media tests' str0m clients against a
#      real bridge) inside a private network namespace, loopback only
#   3. fuzz smoke: each AFL++ target (fuzz/) for 30 s
#   4. browser tier: three Chromium participants, lobby, moderation, screen share, relay-only
#      through coturn, bridge loss (signaling/web-tests/)
#   5. cluster tier: a real kube-apiserver, controller-manager, scheduler and kwok nodes on
#      loopback (e2e/cluster/), with the operator, kubectl and helm run as an admin would
# Builds are cached outside the repository (CONVENE_CACHE, default ~/.cache/convene).
set -euo pipefail
cd "$(dirname "$0")/.."
CONVENE_CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CONVENE_CACHE/target}
export CARGO_TERM_COLOR=never
# One-shot builds gain nothing from incremental state, which grows the cache by gigabytes per
# edit (a full disk once stopped every tool on the machine).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
step() { echo; echo "=== $* ($(date +%T))"; }

step "dependencies"
scripts/install-deps.sh
e2e/cluster/install-tools.sh >/dev/null

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "operations kit: alert rules (promtool unit tests), dashboards' queries, the chart's monitoring objects"
ops/promtool.sh
ops/check-dashboards.sh
ops/check-chart.sh

step "unit and integration tests (private network namespace: every packet stays on loopback)"
cargo build --workspace --all-targets --locked
# Includes e2e/tests/routing.rs: three signalings of one group, 200 rooms through one entry, a shard killed.
# The same package set as the build, so nothing is rebuilt (offline) inside the namespace.
unshare -n -- sh -c 'ip link set lo up && exec cargo test --workspace --no-fail-fast --offline --locked'

step "fuzz smoke: every target under AFL++ for 30 s, no crash or hang (fuzz/README.md)"
fuzz/smoke.sh

step "browser tier (headless Chromium, signaling + bridges + coturn, private netns)"
CONVENE_PREBUILT=1 signaling/web-tests/run.sh

step "cluster tier (real control plane, kwok nodes)"
# --workspace keeps the build's feature set: the test target is already built, nothing rebuilds.
# operator: the examples, edits, GC, invalid manifests, helm, leader election;
# admin: the chart's RBAC, refused children in status, config hash, deletion, Secrets, uninstall;
# autoscale: real signaling, bridges (one per kwok pod) and convene-loadgen under load;
# doctor: `kubectl convene status/doctor` as a kubectl plugin on a healthy and a broken shard;
# recorders: a RecorderPool of real recorders (S3 on moto) grows with recordings, drains back;
# alerts: a real Prometheus (ops/install-prometheus.sh) scrapes operator, signaling, bridges and
#   kube-state-metrics; every dashboard query returns data under loadgen traffic; the bridge
#   alerts fire on a SIGKILL and an empty pool, and resolve.
# Every operator runs under the chart's ServiceAccount, not admin credentials.
e2e/cluster/with-cluster.sh cargo test --workspace --no-fail-fast --locked --test operator --test admin --test autoscale --test doctor --test recorders --test alerts \
  -- --ignored --test-threads=1 --nocapture

step "all tiers passed"
