#!/usr/bin/env bash
# Runs a command against a fresh throwaway cluster, always tearing it down afterwards.
#
#   e2e/cluster/with-cluster.sh <command> [args...]
#
# 1. install-tools.sh (cached after the first run)
# 2. up.sh in a new temp state dir (${TMPDIR:-/tmp}/convene-cluster.XXXXXX)
# 3. runs the command with, exported:
#      KUBECONFIG            <state-dir>/kubeconfig
#      CONVENE_CLUSTER_DIR   <state-dir>   (pass it to add-node.sh)
#      CONVENE_CLUSTER_BIN   the tool cache bin dir, also first on PATH (kubectl, helm, ...)
# 4. down.sh on exit, failure or signal (INT/TERM/HUP), then removes the state dir, unless
#    the command failed or CONVENE_KEEP_CLUSTER=1 (then the path with the logs is printed).
# Exit status: the command's (or non-zero when the cluster could not start or stop cleanly).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 <command> [args...]" >&2; exit 2; }
log() { echo "[with-cluster $(date +%T)] $*" >&2; }

S="" child=""
# Kills the command and all its descendants (it runs in our process group, so walk the tree).
kill_tree() {
  local sig=$1 pid=$2 c
  for c in $(pgrep -P "$pid" 2>/dev/null); do kill_tree "$sig" "$c"; done
  kill "-$sig" "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill_tree TERM "$child"; sleep 1; kill_tree KILL "$child"
  fi
  if [ -n "$S" ]; then
    "$HERE/down.sh" "$S" || { log "down.sh reported leftovers"; [ "$status" != 0 ] || status=1; }
    if [ "$status" = 0 ] && [ "${CONVENE_KEEP_CLUSTER:-0}" != 1 ]; then
      rm -rf "$S"
    else
      log "state dir kept (logs in $S/logs)"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# run <command...>: runs it as a tracked background child and waits, so that a signal to
# this script is handled at once (bash defers traps while a foreground child runs).
# Our stdin is passed on when we have one (background jobs would get /dev/null).
run() {
  if { : <&0; } 2>/dev/null; then "$@" <&0 & else "$@" </dev/null & fi
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

BIN=${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin
run "$HERE/install-tools.sh" >/dev/null
export CONVENE_CLUSTER_BIN=$BIN

# up.sh picks random free ports; a rare clash with a port grabbed in between is retried once.
for attempt in 1 2; do
  S=$(mktemp -d "${TMPDIR:-/tmp}/convene-cluster.XXXXXX")
  if run "$HERE/up.sh" "$S"; then break; fi
  [ "$attempt" = 2 ] && { log "cluster failed to start"; exit 1; }
  log "up.sh failed (logs kept in $S); retrying once"
  S=""
done

export KUBECONFIG=$S/kubeconfig CONVENE_CLUSTER_DIR=$S PATH="$BIN:$PATH"
rc=0
run "$@" || rc=$?
[ "$rc" = 0 ] || log "command exited with $rc"
exit "$rc"
