# Sourced by the ops scripts: builds the pinned Prometheus tools (promtool, prometheus) from
# the wrapper module ops/prometheus (go.mod + go.sum pin v0.316.0 = Prometheus 3.16.0), and
# kube-state-metrics (ops/kube-state-metrics pins v2.20.0) for the cluster tier, into
#   ${CONVENE_CACHE:-$HOME/.cache/convene}/ops/bin
# with GOPATH, GOMODCACHE and GOCACHE under ${CONVENE_CACHE:-$HOME/.cache/convene}/ops too.
# A stamp per binary holds a hash of go.mod, go.sum, tags and flags: a rebuild happens only
# when a pin changes (delete the cache dir to force one).
set -euo pipefail

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$OPS_DIR/.." && pwd)
OPS_CACHE=${CONVENE_CACHE:-$HOME/.cache/convene}/ops
OPS_BIN=$OPS_CACHE/bin
OPS_STAMPS=$OPS_CACHE/stamps

ops_log() { echo "[ops] $*" >&2; }

# Only kubernetes (for the cluster tier), file and static discovery: the other service
# discovery plugins (clouds) would triple the build for nothing.
PROM_TAGS=remove_all_sd,enable_kubernetes_sd

ops_go_env() {
  export GOPATH=$OPS_CACHE/gopath GOMODCACHE=$OPS_CACHE/gomodcache GOCACHE=$OPS_CACHE/gocache
  # GOWORK=off: never a go.work of the repo. -mod=readonly: exactly the pins.
  export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
}

# ops_build <binary>: promtool, prometheus (module ops/prometheus) or kube-state-metrics
# (module ops/kube-state-metrics, for the cluster tier), into $OPS_BIN unless its stamp is
# current.
ops_build() {
  local name=$1 key t tmp dir ver ldflags mod pkg tags
  case "$name" in
    promtool|prometheus) mod=prometheus pkg=github.com/prometheus/prometheus/cmd/$name tags=$PROM_TAGS ;;
    kube-state-metrics) mod=kube-state-metrics pkg=k8s.io/kube-state-metrics/v2 tags="" ;;
    *) ops_log "ops_build: unknown binary $name"; return 1 ;;
  esac
  mkdir -p "$OPS_BIN" "$OPS_STAMPS"
  key=$(cat "$OPS_DIR/$mod/go.mod" "$OPS_DIR/$mod/go.sum" <(echo "$tags $name v1") \
    | sha256sum | cut -c1-32)
  if [ -x "$OPS_BIN/$name" ] && [ "$(cat "$OPS_STAMPS/$name" 2>/dev/null)" = "$key" ]; then
    ops_log "$name: cached"
    return
  fi
  (
    # Serialise concurrent builds (two scripts at once share GOCACHE and the stamp).
    exec 9>"$OPS_CACHE/build.lock"
    flock 9
    if [ -x "$OPS_BIN/$name" ] && [ "$(cat "$OPS_STAMPS/$name" 2>/dev/null)" = "$key" ]; then
      exit 0
    fi
    command -v go >/dev/null || { ops_log "go (>= 1.26) is required on PATH to build $name"; exit 1; }
    ops_go_env
    cd "$OPS_DIR/$mod"
    t=$(date +%s)
    ops_log "$name: building with $(go env GOVERSION) (slow the first time: minutes on 2 cores)"
    ldflags="-s -w"
    if [ "$mod" = prometheus ]; then
      go mod download github.com/prometheus/prometheus
      dir=$(go list -m -f '{{.Dir}}' github.com/prometheus/prometheus)
      ver=$(cat "$dir/VERSION")
      ldflags+=" -X github.com/prometheus/common/version.Version=$ver"
      ldflags+=" -X github.com/prometheus/common/version.Revision=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
      ldflags+=" -X github.com/prometheus/common/version.Branch=module -X github.com/prometheus/common/version.BuildUser=convene"
      ldflags+=" -X github.com/prometheus/common/version.BuildDate=19700101-00:00:00"
    fi
    tmp=$(mktemp -d "$OPS_CACHE/build.XXXXXX")
    go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/$name" "$pkg"
    mv -f "$tmp/$name" "$OPS_BIN/$name"
    rmdir "$tmp"
    echo "$key" > "$OPS_STAMPS/$name"
    ops_log "$name: built in $(( $(date +%s) - t ))s"
  )
}
