#!/usr/bin/env bash
# Checks and unit-tests Convene's alerting rules with promtool:
#   1. builds promtool from the Go module proxy, pinned by ops/prometheus/go.mod + go.sum
#      (Prometheus 3.16.0), cached under ${CONVENE_CACHE:-$HOME/.cache/convene}/ops/bin;
#   2. promtool check rules charts/convene/files/alerts.yaml (syntax, templates);
#   3. every metric an alert names is exported by Convene's code or is a documented external
#      series (ops/tools/metrics.py);
#   4. every alert has a unit test in ops/alerts/tests/;
#   5. promtool test rules ops/alerts/tests/*.yaml;
#   6. promtool check config ops/prometheus/prometheus-convene.yml (the annotation-scrape
#      configuration, which loads the same rules).
# Usage: ops/promtool.sh [--install-only]   (--install-only prints promtool's path)
# Needs go >= 1.26 (first run only) and python3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T0=$(date +%s)
ops_build promtool
PROMTOOL=$OPS_BIN/promtool
if [ "${1:-}" = "--install-only" ]; then
  echo "$PROMTOOL"
  exit 0
fi

cd "$REPO_DIR"
RULES=charts/convene/files/alerts.yaml
passed=0 failed=0
step() {  # step <name> <command...>
  local name=$1; shift
  if "$@"; then
    passed=$((passed + 1))
  else
    ops_log "FAILED: $name"
    failed=$((failed + 1))
  fi
}

step "promtool check rules" "$PROMTOOL" check rules "$RULES"
step "metric names" python3 ops/tools/metrics.py check-alerts "$RULES"
step "promtool check config (ops/prometheus/prometheus-convene.yml)" \
  "$PROMTOOL" check config ops/prometheus/prometheus-convene.yml

coverage() {
  local missing=0 a
  for a in $(sed -n 's/^[[:space:]]*- alert: \([A-Za-z0-9_]*\).*/\1/p' "$RULES"); do
    if ! grep -q "alertname: $a\$" ops/alerts/tests/*.yaml; then
      ops_log "alert $a has no test in ops/alerts/tests/"
      missing=1
    fi
  done
  return $missing
}
step "every alert has a test" coverage

for t in ops/alerts/tests/*.yaml; do
  step "promtool test rules $t" "$PROMTOOL" test rules "$t"
done

ops_log "alert rules checked in $(( $(date +%s) - T0 ))s"
echo "alerts: $passed passed, $failed failed"
[ "$failed" = 0 ]
