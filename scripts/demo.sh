#!/usr/bin/env bash
# Quick start: a real Kubernetes control plane on this machine (no Docker, no cloud), the
# Convene operator running against it, and the trial shard applied as an admin would.
# Prints what `kubectl get` shows, then keeps the cluster up until Ctrl-C so you can explore
# (pass --exit to stop right away).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--inside" ]; then
  CONVENE_CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CONVENE_CACHE/target}
  scripts/install-deps.sh
  echo "building the operator (first time: several minutes)..." >&2
  cargo build -q -p convene-operator
  export CONVENE_OPERATOR_BIN=$CARGO_TARGET_DIR/debug/convene-operator
  exec e2e/cluster/with-cluster.sh "$0" --inside "$@"
fi
shift
e2e/cluster/add-node.sh "$CONVENE_CLUSTER_DIR" node-a 127.0.0.2
e2e/cluster/add-node.sh "$CONVENE_CLUSTER_DIR" node-b 127.0.0.3
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established -f crds/ >/dev/null
"$CONVENE_OPERATOR_BIN" --namespace default --http-addr 127.0.0.1:0 >"$CONVENE_CLUSTER_DIR/logs/operator.log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null || true' EXIT
kubectl create namespace convene-trial >/dev/null
kubectl apply -n convene-trial -f examples/trial.yaml
kubectl wait -n convene-trial --for=condition=Ready shard/trial --timeout=120s >/dev/null
echo
kubectl get -n convene-trial shards,bridgepools
echo
kubectl get -n convene-trial statefulsets,services,ingresses,pods -o wide
echo
echo "The operator runs against a local control plane; explore it with:"
echo "  export KUBECONFIG=$KUBECONFIG PATH=$CONVENE_CLUSTER_BIN:\$PATH"
echo "  kubectl describe -n convene-trial shard/trial"
echo "  kubectl scale -n convene-trial bridgepool/trial --replicas=2"
echo "Operator log: $CONVENE_CLUSTER_DIR/logs/operator.log"
if [ "${1:-}" = "--exit" ]; then exit 0; fi
echo "Ctrl-C stops everything."
while kill -0 "$op" 2>/dev/null; do sleep 1; done
