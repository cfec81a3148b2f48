#!/usr/bin/env bash
# Adds a fake (kwok-managed) Node and waits until it is Ready and schedulable.
#
#   e2e/cluster/add-node.sh <state-dir> <name> <ip>       e.g. ... node-a 127.0.0.2
#
# The IP becomes the node's InternalIP, hence the pod IP of every hostNetwork pod on it.
# Use loopback addresses (127.0.0.N): tests may only talk to 127.0.0.0/8.
# Env: NODE_READY_TIMEOUT (seconds, default 60).
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 <state-dir> <name> <ip>" >&2; exit 2; }
S=$(cd "$1" && pwd)
NAME=$2 IP=$3
BIN=${CONVENE_CLUSTER_BIN:-${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin}
k() { "$BIN/kubectl" --kubeconfig "$S/kubeconfig" --request-timeout=10s "$@"; }

k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: ${NAME}
  annotations:
    kwok.x-k8s.io/node: fake        # kwok's --manage-nodes-with-annotation-selector
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: ${NAME}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:           # honoured on create (so kwok never sees a node without its IP)...
  addresses:
  - {type: InternalIP, address: "${IP}"}
  - {type: Hostname, address: "${NAME}"}
  capacity:    {cpu: "32", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
# ...but ignored on update (status is a subresource), so patch it too: re-running is safe.
k patch node "$NAME" --subresource=status --type=merge -p "$(cat <<EOF
{"status": {
  "addresses": [{"type": "InternalIP", "address": "${IP}"}, {"type": "Hostname", "address": "${NAME}"}],
  "capacity":    {"cpu": "32", "memory": "256Gi", "pods": "110"},
  "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}
}}
EOF
)" >/dev/null

# Ready (kwok's node-initialize stage) and no not-ready taint left by node-lifecycle.
deadline=$(( $(date +%s) + ${NODE_READY_TIMEOUT:-60} ))
while :; do
  ready=$(k get node "$NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  taints=$(k get node "$NAME" -o jsonpath='{.spec.taints[*].key}' 2>/dev/null || true)
  if [ "$ready" = True ] && [[ "$taints" != *node.kubernetes.io/not-ready* ]]; then break; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "add-node: $NAME not Ready after ${NODE_READY_TIMEOUT:-60}s (ready=$ready taints=$taints)" >&2
    exit 1
  fi
  sleep 0.5
done
echo "node $NAME ($IP) Ready" >&2
