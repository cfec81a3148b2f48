#!/usr/bin/env bash
# Checks the Grafana dashboards in charts/convene/dashboards/ (see ops/dashboards/check.py):
# the JSON is up to date with ops/dashboards/generate.py, every metric a query names exists,
# and every panel query and variable returns a series under `promtool test rules` from a
# fixture of all of Convene's metrics.
#   CONVENE_PROM_URL=http://host:port ops/check-dashboards.sh
#       each query must also return data from that Prometheus (the cluster tier's);
#   ops/check-dashboards.sh --live-selftest
#       builds the Prometheus server (ops/install-prometheus.sh's cache), serves the fixture
#       from 127.0.0.1, one exposition per pod, runs a local Prometheus with
#       ops/prometheus/prometheus-convene.yml (file_sd targets carrying the __meta_kubernetes_*
#       labels of those pods instead of Kubernetes discovery), checks that its relabeling gives
#       each pod the monitors' target labels and drops the pods it must, and runs the live
#       check against it; then stops both.
# Needs promtool (built and cached as by ops/promtool.sh) and python3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T0=$(date +%s)
ops_build promtool
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${1:-}" = "--live-selftest" ]; then
  ops_build prometheus
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  www_port=$(free_port)
  prom_port=$(free_port)
  python3 "$OPS_DIR/dashboards/check.py" fake-targets "$work/live" "$www_port"
  jobs=$(( $(wc -l < "$work/live/expect.txt") + 1 ))   # the pods, and kube-state-metrics
  python3 -m http.server "$www_port" --bind 127.0.0.1 --directory "$work/live/www" > "$work/www.log" 2>&1 &
  pids+=($!)
  "$OPS_BIN/prometheus" --config.file="$work/live/prometheus.yml" --storage.tsdb.path="$work/live/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn > "$work/prometheus.log" 2>&1 &
  pids+=($!)
  export CONVENE_PROM_URL="http://127.0.0.1:$prom_port"
  # Every target up (and the pods the relabeling must drop not scraped), then a few more
  # scrapes so rate() has samples.
  ready=""
  for _ in $(seq 1 60); do
    ans=$("$OPS_BIN/promtool" query instant "$CONVENE_PROM_URL" 'count(up == 1)' 2>/dev/null || true)
    case "$ans" in *"=> $jobs @"*) ready=1; break ;; esac
    sleep 0.5
  done
  if [ -z "$ready" ]; then
    cat "$work/prometheus.log" >&2
    ops_log "want $jobs targets up within 30s (last answer: '${ans:-}')"
    echo "dashboards: 0 passed, 1 failed"
    exit 1
  fi
  # The relabeling of ops/prometheus/prometheus-convene.yml labels each pod as the monitors do.
  while read -r sel; do
    ans=$("$OPS_BIN/promtool" query instant "$CONVENE_PROM_URL" "count($sel)" 2>/dev/null || true)
    case "$ans" in
      *"=> 1 @"*) ;;
      *) ops_log "relabeling: want one target $sel, got '$ans'"; echo "dashboards: 0 passed, 1 failed"; exit 1 ;;
    esac
  done < "$work/live/expect.txt"
  sleep 3
  ops_log "local Prometheus on $CONVENE_PROM_URL scrapes $jobs fake targets"
fi

rc=0
python3 "$OPS_DIR/dashboards/check.py" "$OPS_BIN/promtool" "$work/offline" || rc=1
ops_log "dashboards checked in $(( $(date +%s) - T0 ))s"
if [ "$rc" = 0 ]; then echo "dashboards: 1 passed, 0 failed"; else echo "dashboards: 0 passed, 1 failed"; fi
exit $rc
