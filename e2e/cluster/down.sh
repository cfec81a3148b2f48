#!/usr/bin/env bash
# Stops everything up.sh started for <state-dir> and verifies it is gone.
#
#   e2e/cluster/down.sh <state-dir>
#
# Kills each component's process group (TERM, then KILL after a grace period), newest
# first, then checks that no component process referring to <state-dir> remains and that
# none of its ports is still listening. Safe to call twice (and on a half-started cluster).
# Exit status: 0 when everything is gone, 1 otherwise.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <state-dir>" >&2; exit 2; }
[ -d "$1" ] || exit 0
S=$(cd "$1" && pwd)
log() { echo "[down $(date +%T)] $*" >&2; }

# True if the process group has a live (non-zombie) member.
group_alive() {
  local p st
  for p in $(pgrep -g "$1" 2>/dev/null); do
    st=$(ps -o stat= -p "$p" 2>/dev/null || true)
    [ -n "$st" ] && [ "${st:0:1}" != Z ] && return 0
  done
  return 1
}

if [ -s "$S/pids" ]; then
  # Newest first: kwok, scheduler, controller-manager, apiserver, then etcd.
  mapfile -t entries < <(tac "$S/pids")
  for e in "${entries[@]}"; do
    pid=${e##* }
    group_alive "$pid" && kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for e in "${entries[@]}"; do
    name=${e% *} pid=${e##* }
    for _ in $(seq 100); do group_alive "$pid" || break; sleep 0.1; done   # 10 s grace
    if group_alive "$pid"; then
      log "$name (pgid $pid) ignored TERM; sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      for _ in $(seq 50); do group_alive "$pid" || break; sleep 0.1; done
    fi
  done
  # The components were orphaned when up.sh exited, so init reaps them, sometimes with a
  # delay: wait for the zombies to go too, so `pgrep kube-apiserver` right after is empty.
  for e in "${entries[@]}"; do
    pid=${e##* }
    for _ in $(seq 100); do [ -z "$(pgrep -g "$pid")" ] && break; sleep 0.1; done
  done
  mv -f "$S/pids" "$S/pids.stopped"
fi

# Verify: no component process whose command line mentions this state dir...
S_RE=$(printf '%s' "$S" | sed 's/[][\.*^$+?(){}|/]/\\&/g')
left=$(pgrep -f "^[^ ]*/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok) .*${S_RE}/" || true)
status=0
if [ -n "$left" ]; then
  log "processes still running for $S: $left; killing"
  kill -KILL $left 2>/dev/null || true
  sleep 0.5
  left=$(pgrep -f "^[^ ]*/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok) .*${S_RE}/" || true)
  [ -z "$left" ] || { log "could not kill: $left"; status=1; }
fi
# ...and none of its ports still listening.
if [ -f "$S/ports" ]; then
  while IFS== read -r key port; do
    [ -n "$port" ] || continue
    if [ -n "$(ss -Hltn "( sport = :$port )")" ]; then
      log "port $port ($key) is still listening"; status=1
    fi
  done < "$S/ports"
fi
[ "$status" = 0 ] && log "stopped cluster in $S"
exit "$status"
