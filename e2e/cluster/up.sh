#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback, without containers:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake kubelets).
#
#   e2e/cluster/up.sh <state-dir>
#
# Every listening port is a free one picked at runtime on 127.0.0.1, so several clusters
# (or leftovers) never clash. Files written into <state-dir>:
#   kubeconfig      admin kubeconfig with embedded certs (kubectl, kube-rs try_default())
#   pki/            CA, apiserver serving cert, admin client cert, service-account keys
#   logs/<c>.log    one log per component
#   pids            "<component> <pid>" lines; each pid leads its own process group
#   ports           shell-sourceable KEY=port lines
#   cluster.env     KUBECONFIG=... and CONVENE_CLUSTER_DIR=... (source it)
#   kwok.yaml       kwok Stage config (concatenated kwok-stages/*.yaml)
# Binaries come from $CONVENE_CLUSTER_BIN (default: the install-tools.sh cache dir).
# On failure it prints the log tails, stops what it started and exits non-zero.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 <state-dir>" >&2; exit 2; }
mkdir -p "$1"
S=$(cd "$1" && pwd)
BIN=${CONVENE_CLUSTER_BIN:-${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin}
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
  [ -x "$BIN/$b" ] || { echo "up.sh: $BIN/$b missing; run e2e/cluster/install-tools.sh" >&2; exit 1; }
done
if [ -s "$S/pids" ]; then
  echo "up.sh: $S/pids exists; run down.sh $S first" >&2; exit 1
fi

SERVICE_CIDR=10.96.0.0/16   # virtual ClusterIPs; nothing routes them (no kube-proxy)
POD_CIDR=127.244.0.0/16     # IPs kwok gives non-hostNetwork pods: loopback, so a process the kubelet
                            # stand-in runs for one (a recorder) binds its pod IP and is reachable
# A reused state dir starts from scratch (old etcd data would carry old ports).
rm -rf "$S/etcd" "$S/pki" "$S/logs" "$S"/*-certs "$S/pids.stopped"
mkdir -p "$S/pki" "$S/logs"
: > "$S/pids"

log() { echo "[up $(date +%T)] $*" >&2; }

ok=0
on_exit() {
  [ "$ok" = 1 ] && return
  log "FAILED; last log lines:"
  for f in "$S"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "----- $f" >&2; tail -n 25 "$f" >&2
  done
  "$HERE/down.sh" "$S" >&2 || true
}
trap on_exit EXIT

# ---- free ports ------------------------------------------------------------------------
# Random ports below the kernel's ephemeral range (32768+), so outgoing connections of other
# processes cannot grab them between picking and binding; checked against every socket.
picked=" "
pick_port() {  # pick_port VAR
  local p
  for _ in $(seq 500); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$picked" in *" $p "*) continue ;; esac
    if [ -z "$(ss -Htan "( sport = :$p )")" ]; then
      picked+="$p "; printf -v "$1" '%s' "$p"; echo "$1=$p" >> "$S/ports"; return 0
    fi
  done
  log "no free port found"; return 1
}
: > "$S/ports"
pick_port ETCD_PORT; pick_port ETCD_PEER_PORT; pick_port API_PORT
pick_port KCM_PORT; pick_port SCHED_PORT; pick_port KWOK_PORT

# ---- certificates (openssl) --------------------------------------------------------------
# Proper v3 extensions: rustls/webpki (kube-rs) rejects certs without them.
P=$S/pki
ossl() { openssl "$@" 2>>"$P/openssl.log"; }   # key-gen progress noise
ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout "$P/ca.key" -out "$P/ca.crt" \
  -subj "/CN=convene-e2e-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash"
issue() {  # issue <name> <subject> <extensions...>
  local name=$1 subj=$2; shift 2
  local ext=$P/$name.ext
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "authorityKeyIdentifier=keyid" "subjectKeyIdentifier=hash" "$@" > "$ext"
  ossl req -newkey rsa:2048 -nodes -sha256 -keyout "$P/$name.key" -out "$P/$name.csr" -subj "$subj"
  ossl x509 -req -sha256 -days 3650 -in "$P/$name.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" \
    -CAcreateserial -extfile "$ext" -out "$P/$name.crt"
}
issue apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
issue admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
# Service-account token signing keypair (apiserver signs/verifies, controller-manager signs
# legacy token secrets).
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/sa.key"
ossl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub"

b64() { base64 -w0 < "$1"; }
cat > "$S/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: convene-e2e
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority-data: $(b64 "$P/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$P/admin.crt")
    client-key-data: $(b64 "$P/admin.key")
contexts:
- name: convene-e2e
  context:
    cluster: convene-e2e
    user: admin
    namespace: default
current-context: convene-e2e
EOF
chmod 600 "$S/kubeconfig"
printf 'export KUBECONFIG=%q\nexport CONVENE_CLUSTER_DIR=%q\n' "$S/kubeconfig" "$S" > "$S/cluster.env"

# ---- process helpers ----------------------------------------------------------------------
# setsid: each component leads its own process group, so down.sh can kill exactly it.
start() {  # start <name> <args...>
  local name=$1; shift
  setsid "$BIN/$name" "$@" > "$S/logs/$name.log" 2>&1 < /dev/null &
  echo "$name $!" >> "$S/pids"
  log "started $name (pid $!)"
}
pid_of() { awk -v n="$1" '$1==n {print $2}' "$S/pids"; }
# wait_for <name> <timeout-s> <what> <command...>: polls the command until it succeeds,
# failing early if component <name> died.
wait_for() {
  local name=$1 timeout=$2 what=$3; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$(pid_of "$name")" 2>/dev/null || { log "$name exited"; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { log "timeout (${timeout}s) waiting for $what"; return 1; }
    sleep 0.5
  done
  log "$what"
}
CURL=(curl -fsS --max-time 5 --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key")
KUBECTL=("$BIN/kubectl" --kubeconfig "$S/kubeconfig" --request-timeout=10s)

# ---- etcd -----------------------------------------------------------------------------------
# Single member; --unsafe-no-fsync because the data is throwaway and fsync is slow.
start etcd \
  --name=default --data-dir="$S/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync=true --log-level=warn
wait_for etcd 60 "etcd healthy" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

# ---- kube-apiserver ---------------------------------------------------------------------------
start kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$S/apiserver-certs" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --service-account-issuer="https://127.0.0.1:$API_PORT" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=RBAC --allow-privileged=true --profiling=false \
  --endpoint-reconciler-type=none
# (endpoint-reconciler none: Endpoints may not hold the loopback advertise address, so the
#  default reconciler would fail every 10 s; nothing in this cluster uses that endpoint.)
wait_for kube-apiserver 180 "kube-apiserver ready" "${CURL[@]}" "https://127.0.0.1:$API_PORT/readyz"

# ---- kube-controller-manager --------------------------------------------------------------------
# Uses the admin kubeconfig (system:masters) for simplicity. The controller list covers
# workloads (statefulset, deployment, replicaset, daemonset, job, cronjob), ownership
# (garbage-collector), namespaces/service accounts/tokens, endpoints, PDB (disruption),
# node lifecycle (NotReady taints/eviction when kwok stops renewing leases), podgc, and volume
# claims (binding, and the protection finalizers that let a namespace with claims be deleted).
C=(
  statefulset deployment replicaset daemonset job cronjob ttl-after-finished
  garbage-collector namespace serviceaccount serviceaccount-token
  root-ca-certificate-publisher clusterrole-aggregation resourcequota
  endpoints endpointslice endpointslice-mirroring disruption
  node-lifecycle taint-eviction pod-garbage-collector
  persistentvolume-binder persistentvolume-protection persistentvolumeclaim-protection
)
CONTROLLERS=$(printf '%s-controller,' "${C[@]}"); CONTROLLERS=${CONTROLLERS%,}
start kube-controller-manager \
  --kubeconfig="$S/kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$S/kcm-certs" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
  --leader-elect=false \
  --root-ca-file="$P/ca.crt" --service-account-private-key-file="$P/sa.key" \
  --controllers="$CONTROLLERS" \
  --kube-api-qps=100 --kube-api-burst=200

# ---- kube-scheduler ----------------------------------------------------------------------------
# Default profile: NodePorts (hostPort conflicts), InterPodAffinity, NodeResourcesFit, ...
# Both raise the client's default rate limit (20 requests/s for the controller-manager), as
# clusters that create hundreds of pods at once do: 100 Shards' 300 pods would otherwise wait
# tens of seconds in the StatefulSet controller's client, not in the operator.
start kube-scheduler \
  --kubeconfig="$S/kubeconfig" --kube-api-qps=100 --kube-api-burst=200 \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$S/scheduler-certs" \
  --leader-elect=false

# ---- kwok (fake kubelets) -----------------------------------------------------------------------
# Only nodes annotated kwok.x-k8s.io/node=fake are managed (add-node.sh creates them); pods
# bound to them go Running via the Stage configs. hostNetwork pods get the node's InternalIP.
for f in "$HERE"/kwok-stages/*.yaml; do cat "$f"; echo "---"; done > "$S/kwok.yaml"
start kwok \
  --kubeconfig="$S/kubeconfig" --config="$S/kwok.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr="$POD_CIDR" --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$KWOK_PORT"

wait_for kube-controller-manager 120 "kube-controller-manager healthy" curl -kfsS --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 120 "kube-scheduler healthy" curl -kfsS --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
wait_for kwok 120 "kwok healthy" curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
# The serviceaccount controller must have created default/default, or pod creation fails.
wait_for kube-controller-manager 120 "ServiceAccount default/default created" "${KUBECTL[@]}" -n default get serviceaccount default

ok=1
log "cluster up: KUBECONFIG=$S/kubeconfig (apiserver https://127.0.0.1:$API_PORT)"
