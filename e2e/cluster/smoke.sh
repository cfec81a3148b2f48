#!/usr/bin/env bash
# Self-check of the cluster tier; run it under with-cluster.sh:
#
#   e2e/cluster/with-cluster.sh e2e/cluster/smoke.sh
#
# Checks: fake nodes get Ready; scheduler honours required pod anti-affinity and hostPort
# conflicts; kwok runs bound pods with podIP = node InternalIP (hostNetwork); the PDB
# (disruption) controller computes status; the garbage collector deletes owned objects;
# namespace deletion completes (kwok finalises pod deletion); kubectl and helm work.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CONVENE_CLUSTER_DIR:?run me under e2e/cluster/with-cluster.sh}"
NS=smoke
passed=0
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() {
  echo "FAIL - $*" >&2
  kubectl get nodes -o wide >&2 || true
  kubectl -n "$NS" get pods -o wide >&2 || true
  echo "smoke: $passed passed, 1 failed"
  exit 1
}
# wait_until <timeout-s> <what> <command...>
wait_until() {
  local t=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timeout (${t}s) waiting for: $what"
    sleep 0.5
  done
}

# ---- tools ----------------------------------------------------------------------------
kubectl version >/dev/null || fail "kubectl version"
server=$(kubectl get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
[[ "$server" == v1.* && "$server" != v1.0.* && "$server" != *master* ]] || fail "server version is '$server'"
pass "kubectl version (server $server)"
hv=$(helm version --short) || fail "helm version"
[[ "$hv" == v3.* ]] || fail "helm version is '$hv'"
pass "helm version ($hv)"

# ---- nodes ------------------------------------------------------------------------------
"$HERE/add-node.sh" "$CONVENE_CLUSTER_DIR" smoke-a 127.0.0.2 || fail "add-node smoke-a"
"$HERE/add-node.sh" "$CONVENE_CLUSTER_DIR" smoke-b 127.0.0.3 || fail "add-node smoke-b"
pass "two kwok nodes Ready"

kubectl create namespace "$NS" >/dev/null
# Pods are rejected until the serviceaccount controller has created the namespace's SA.
wait_until 60 "serviceaccount $NS/default" kubectl -n "$NS" get serviceaccount default

# ---- StatefulSet: hostNetwork + anti-affinity ------------------------------------------------
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bridge, namespace: smoke}
spec:
  serviceName: bridge
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: bridge}}
  template:
    metadata: {labels: {app: bridge}}
    spec:
      hostNetwork: true          # containerPort becomes a hostPort on the node
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: bridge}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: bridge
        image: convene/bridge:smoke   # never pulled: kwok fakes the kubelet
        ports:
        - {name: media, containerPort: 10000, protocol: UDP}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: bridge, namespace: smoke}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: bridge}}
EOF

running_count() { kubectl -n "$NS" get pods -l app=bridge --field-selector=status.phase=Running -o name | wc -l; }
wait_until 90 "2 bridge pods Running" test "$(running_count)" -ge 2
sleep 3   # give the scheduler time to (wrongly) place the third pod, if it would
[ "$(running_count)" = 2 ] || fail "expected exactly 2 Running bridge pods"
nodes=$(kubectl -n "$NS" get pods -l app=bridge --field-selector=status.phase=Running \
  -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l)
[ "$nodes" = 2 ] || fail "Running bridge pods are not on distinct nodes"
for pod in $(kubectl -n "$NS" get pods -l app=bridge --field-selector=status.phase=Running -o name); do
  node=$(kubectl -n "$NS" get "$pod" -o jsonpath='{.spec.nodeName}')
  pod_ip=$(kubectl -n "$NS" get "$pod" -o jsonpath='{.status.podIP}')
  node_ip=$(kubectl get node "$node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  [ -n "$pod_ip" ] && [ "$pod_ip" = "$node_ip" ] || fail "$pod podIP '$pod_ip' != node $node IP '$node_ip'"
done
pass "2 bridge pods Running on distinct nodes with podIP = node InternalIP"

pending=$(kubectl -n "$NS" get pods -l app=bridge --field-selector=status.phase=Pending -o name)
[ "$(echo "$pending" | grep -c .)" = 1 ] || fail "expected 1 Pending bridge pod, got: $pending"
wait_until 30 "PodScheduled=False/Unschedulable on $pending" bash -c \
  "kubectl -n $NS get $pending -o jsonpath='{.status.conditions[?(@.type==\"PodScheduled\")].reason}' | grep -qx Unschedulable"
[ -z "$(kubectl -n "$NS" get "$pending" -o jsonpath='{.spec.nodeName}')" ] || fail "$pending got a node"
pass "third bridge pod stays Pending (Unschedulable)"

# ---- hostPort conflict (NodePorts filter), independent of anti-affinity ---------------------
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: port-clash, namespace: smoke}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: convene/bridge:smoke
    ports:
    - {containerPort: 10000, protocol: UDP}
EOF
wait_until 30 "port-clash Unschedulable" bash -c \
  "kubectl -n $NS get pod port-clash -o jsonpath='{.status.conditions[?(@.type==\"PodScheduled\")].message}' | grep -q 'free ports'"
pass "hostNetwork pod with a taken UDP port stays Pending (didn't have free ports)"

# ---- PDB status (disruption controller) ------------------------------------------------------
wait_until 60 "PDB currentHealthy=2" bash -c \
  "test \"\$(kubectl -n $NS get pdb bridge -o jsonpath='{.status.currentHealthy}')\" = 2"
pass "PodDisruptionBudget status computed (currentHealthy=2)"

# ---- garbage collection of owned objects ------------------------------------------------------
kubectl -n "$NS" create configmap parent --from-literal=k=v >/dev/null
uid=$(kubectl -n "$NS" get configmap parent -o jsonpath='{.metadata.uid}')
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: child
  namespace: ${NS}
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: parent, uid: "${uid}"}
data: {k: v}
EOF
kubectl -n "$NS" delete configmap parent >/dev/null
wait_until 60 "child configmap garbage-collected" bash -c \
  "! kubectl -n $NS get configmap child"
pass "owned ConfigMap garbage-collected after its owner was deleted"

# ---- helm against the cluster ---------------------------------------------------------------
chart=$(mktemp -d)
mkdir -p "$chart/templates"
printf 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n' > "$chart/Chart.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  k: v\n' \
  > "$chart/templates/cm.yaml"
helm install smoke-rel "$chart" -n "$NS" --wait --timeout 60s >/dev/null || fail "helm install"
kubectl -n "$NS" get configmap smoke-rel-cm >/dev/null || fail "helm-installed configmap missing"
helm uninstall smoke-rel -n "$NS" >/dev/null || fail "helm uninstall"
rm -rf "$chart"
pass "helm install/uninstall against the cluster"

# ---- namespace deletion (namespace controller + kwok pod-delete stage) -----------------------
kubectl delete namespace "$NS" --wait=false >/dev/null
wait_until 120 "namespace $NS deleted" bash -c "! kubectl get namespace $NS"
pass "namespace with running pods deleted"

echo "smoke: $passed passed, 0 failed"
