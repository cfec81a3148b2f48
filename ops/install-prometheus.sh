#!/usr/bin/env bash
# Builds the Prometheus server (and promtool) from the Go module proxy, pinned by
# ops/prometheus/go.mod + go.sum (Prometheus 3.16.0; service discovery: kubernetes, file and
# static only), cached under ${CONVENE_CACHE:-$HOME/.cache/convene}/ops/bin, then proves the
# binary works: `prometheus --version`, and a short run on 127.0.0.1 (a free port, a temporary
# TSDB) with a config that scrapes itself, until `up{job="prometheus"}` is 1; then stops it.
# Prints the bin dir on the last line of stdout (progress goes to stderr).
# Usage: ops/install-prometheus.sh [--no-selftest]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ops_build prometheus
ops_build promtool
# The cluster tier runs it too: the dashboards' kube_* panels need its series.
ops_build kube-state-metrics
[ "${1:-}" = "--no-selftest" ] && { echo "$OPS_BIN"; exit 0; }

"$OPS_BIN/prometheus" --version >&2

T0=$(date +%s)
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$port"]
YML
"$OPS_BIN/promtool" check config "$work/prometheus.yml" >&2
"$OPS_BIN/prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn > "$work/log" 2>&1 &
pid=$!
up=""
for _ in $(seq 1 60); do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$work/log" >&2
    ops_log "prometheus exited"
    exit 1
  fi
  up=$("$OPS_BIN/promtool" query instant "http://127.0.0.1:$port" 'up{job="prometheus"}' 2>/dev/null || true)
  case "$up" in *"=> 1 @"*) break ;; esac
  sleep 0.5
done
case "$up" in
  *"=> 1 @"*) ops_log "prometheus on 127.0.0.1:$port scraped itself: $up" ;;
  *) cat "$work/log" >&2; ops_log "prometheus did not scrape itself within 30s (last answer: '$up')"; exit 1 ;;
esac
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""
ops_log "self-test passed in $(( $(date +%s) - T0 ))s"
echo "$OPS_BIN"
