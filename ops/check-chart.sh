#!/usr/bin/env bash
# Checks the chart's monitoring templates with helm (skipped, saying so, without a helm binary:
# the cluster tier's e2e/cluster/install-tools.sh builds one into
# ${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin):
#   - with every toggle off, no PrometheusRule, monitor or dashboard ConfigMap renders;
#   - with them on, a PrometheusRule, a ServiceMonitor, 4 PodMonitors and a ConfigMap per
#     dashboard render;
#   - the rendered PrometheusRule's groups pass `promtool check rules` and every unit test of
#     ops/alerts/tests/ (so the template cannot drift from files/alerts.yaml), and
#     kubernetesAlerts=false / leaderElection.enabled=false / disabledAlerts leave out what they say;
#   - each dashboard ConfigMap carries its JSON file unchanged;
#   - values.schema.json refuses a misspelt or mistyped monitoring value.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM=${HELM:-}
if [ -z "$HELM" ]; then
  for h in "${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin/helm" "$(command -v helm || true)"; do
    if [ -n "$h" ] && [ -x "$h" ]; then HELM=$h; break; fi
  done
fi
if [ -z "$HELM" ]; then
  ops_log "SKIPPED: no helm binary (run e2e/cluster/install-tools.sh to build one)"
  echo "chart: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
ops_build promtool
PROMTOOL=$OPS_BIN/promtool
cd "$REPO_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
T0=$(date +%s)
passed=0 failed=0
ok()   { passed=$((passed + 1)); }
bad()  { ops_log "FAILED: $*"; failed=$((failed + 1)); }
tmpl() { "$HELM" template t charts/convene --kube-version 1.33.0 --namespace convene-system "$@"; }
ALL=(--set monitoring.prometheusRule.enabled=true --set monitoring.serviceMonitor.enabled=true
     --set monitoring.podMonitors.signaling.enabled=true --set monitoring.podMonitors.bridge.enabled=true
     --set monitoring.podMonitors.turn.enabled=true --set monitoring.podMonitors.recorder.enabled=true
     --set dashboards.enabled=true)

# kinds <file>: "count kind" lines of the monitoring objects
kinds() { { grep -E '^kind: (PrometheusRule|ServiceMonitor|PodMonitor|ConfigMap)$' "$1" || true; } | sort | uniq -c | awk '{print $1, $3}' | paste -sd, -; }

tmpl > "$work/off.yaml"
k=$(kinds "$work/off.yaml"); [ -z "$k" ] && ok || bad "toggles off still render: $k"

tmpl "${ALL[@]}" > "$work/on.yaml"
n=$(ls charts/convene/dashboards/*.json | wc -l)
want="$n ConfigMap,4 PodMonitor,1 PrometheusRule,1 ServiceMonitor"
k=$(kinds "$work/on.yaml"); [ "$k" = "$want" ] && ok || bad "toggles on render '$k', want '$want'"

# rules <helm args...>: the rendered PrometheusRule's spec as a rule file on stdout.
rules() {
  tmpl --show-only templates/prometheusrule.yaml "$@" | awk 'f { print substr($0, 3) } /^spec:$/ { f = 1 }'
}
rules --set monitoring.prometheusRule.enabled=true > "$work/rendered-rules.yaml"
if "$PROMTOOL" check rules "$work/rendered-rules.yaml" >/dev/null; then ok; else bad "promtool check rules (rendered)"; fi
for t in ops/alerts/tests/*.yaml; do
  sed "s#^  - ../../../charts/convene/files/alerts.yaml#  - $work/rendered-rules.yaml#" "$t" > "$work/$(basename "$t")"
  grep -q "$work/rendered-rules.yaml" "$work/$(basename "$t")" || { bad "$t: no rule_files line to swap"; continue; }
  if "$PROMTOOL" test rules "$work/$(basename "$t")" >/dev/null 2>&1; then ok; else bad "unit tests $t on the rendered rules"; fi
done
n_src=$(grep -c '^      - alert:' charts/convene/files/alerts.yaml)
n_out=$(grep -c '^ *- alert:' "$work/rendered-rules.yaml" || true)
[ "$n_src" = "$n_out" ] && ok || bad "rendered $n_out alerts, files/alerts.yaml has $n_src"

rules --set monitoring.prometheusRule.enabled=true --set monitoring.prometheusRule.kubernetesAlerts=false \
  --set leaderElection.enabled=false --set 'monitoring.prometheusRule.disabledAlerts={ConveneBridgeRTTHigh}' \
  --set monitoring.prometheusRule.additionalAlertLabels.team=video > "$work/trimmed.yaml"
if grep -q 'convene-kubernetes\|ConveneOperatorLeaderMissing\|ConveneBridgeRTTHigh' "$work/trimmed.yaml"; then
  bad "kubernetesAlerts=false / leaderElection off / disabledAlerts left alerts in"
elif [ "$(grep -c '^ *- alert:' "$work/trimmed.yaml")" != "$((n_src - 5))" ] \
  || [ "$(grep -c 'team: video' "$work/trimmed.yaml")" != "$((n_src - 5))" ]; then
  bad "trimmed rules: wrong alert count or additionalAlertLabels missing"
else
  ok
fi

# Dashboards: the ConfigMap data is the file, byte for byte (but the final newline).
tmpl --show-only templates/dashboards.yaml --set dashboards.enabled=true > "$work/dash.yaml"
if python3 - "$work/dash.yaml" charts/convene/dashboards <<'PY'
import sys, pathlib
text, files = open(sys.argv[1]).read(), pathlib.Path(sys.argv[2])
docs = {}
for doc in text.split("\n---\n"):
    lines = doc.split("\n")
    for i, l in enumerate(lines):
        if l.startswith("  convene-") and l.endswith(".json: |-"):
            body = []
            for m in lines[i + 1:]:
                if m.startswith("    ") or m == "":
                    body.append(m[4:])
                else:
                    break
            docs[l.strip()[:-4]] = "\n".join(body).rstrip("\n")
want = {p.name: p.read_text().rstrip("\n") for p in files.glob("*.json")}
bad = [n for n in want if docs.get(n) != want[n]]
if bad or set(docs) != set(want):
    print("dashboards differ in their ConfigMaps:", bad or sorted(set(docs) ^ set(want)), file=sys.stderr)
    sys.exit(1)
PY
then ok; else bad "dashboard ConfigMaps"; fi

# The schema covers the new values: typos and wrong types are refused.
for bad_set in monitoring.prometheusRule.enabeld=true monitoring.prometheusRule.enabled=yes \
  monitoring.podMonitors.bridge.path=metrics monitoring.interval=15 dashboards.labels.x=null; do
  if tmpl --set "$bad_set" >/dev/null 2>&1; then bad "values.schema.json accepted --set $bad_set"; else ok; fi
done

ops_log "chart checked with $("$HELM" version --short) in $(( $(date +%s) - T0 ))s"
echo "chart: $passed passed, $failed failed"
[ "$failed" = 0 ]
