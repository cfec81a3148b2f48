#!/usr/bin/env bash
# One command, a complete single-server Convene on this machine: builds and starts
# convene-signaling (with the web app) and one convene-bridge, optionally coturn, and prints the
# URL to open. No Docker, no cluster. Ctrl-C stops everything.
#   PORT=8080 UDP_PORT=10000 TURN=1 signaling/run-local.sh
#   TLS=1 signaling/run-local.sh   # HTTPS/WSS with a fresh self-signed certificate (fingerprint
#                                  # printed); the bridge dials a plain loopback-only listener
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8080}"
UDP_PORT="${UDP_PORT:-10000}"
BRIDGE_HTTP_PORT="${BRIDGE_HTTP_PORT:-9090}"
ADDRESS="${ADDRESS:-127.0.0.1}"   # address the bridge advertises to browsers
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${CONVENE_CACHE:-$HOME/.cache/convene}/target}"
cargo build -q -p convene-signaling -p convene-media --bin convene-signaling --bin convene-bridge
BIN="$CARGO_TARGET_DIR/debug"
# The bridge secret goes through the environment (both binaries read CONVENE_BRIDGE_SECRET), not argv.
export CONVENE_BRIDGE_SECRET="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

sig_args=(--listen "0.0.0.0:$PORT")
SCHEME=http
SIG_INTERNAL="127.0.0.1:$PORT"   # where the bridge and the health checks reach signaling
if [[ "${TLS:-0}" == 1 ]]; then
  TLS_DIR="$(mktemp -d /tmp/convene-tls.XXXXXX)"
  # --self-signed: a mode of the signaling binary (already built here; no extra tool).
  "$BIN/convene-signaling" --self-signed "localhost,127.0.0.1,$ADDRESS" \
    --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem"
  echo "(certificate: $TLS_DIR/cert.pem — compare the fingerprint with the browser's warning)"
  SCHEME=https
  INTERNAL_PORT="${INTERNAL_PORT:-$((PORT + 1))}"
  SIG_INTERNAL="127.0.0.1:$INTERNAL_PORT"
  # The bridge speaks plain ws: it dials a loopback-only listener of the same server.
  sig_args+=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem" --internal-listen "$SIG_INTERNAL")
fi
if [[ "${TURN:-0}" == 1 ]] && command -v turnserver >/dev/null; then
  TURN_SECRET="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  turnserver -n --listening-ip="$ADDRESS" --listening-port=3478 --relay-ip="$ADDRESS" \
    --use-auth-secret --static-auth-secret="$TURN_SECRET" --realm=convene --allow-loopback-peers \
    --no-cli --no-tls --no-dtls --log-file=stdout >/tmp/convene-turn.log 2>&1 &
  pids+=($!)
  export CONVENE_TURN_SECRET="$TURN_SECRET"
  sig_args+=(--turn-uris "turn:$ADDRESS:3478?transport=udp")
fi
"$BIN/convene-signaling" "${sig_args[@]}" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://$SIG_INTERNAL/health" >/dev/null && break; sleep 0.1; done
"$BIN/convene-bridge" --bind 0.0.0.0 --udp-port "$UDP_PORT" --tcp-port $((UDP_PORT + 1)) \
  --http-port "$BRIDGE_HTTP_PORT" --address-source static --static-addresses "$ADDRESS" \
  --signaling-url "ws://$SIG_INTERNAL/bridge" --bridge-id local-bridge-1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://$SIG_INTERNAL/ready" | grep -q "1 bridge" && break; sleep 0.1; done
echo
echo "Convene is running. Open: $SCHEME://localhost:$PORT/"
echo "(metrics: $SCHEME://localhost:$PORT/metrics; Ctrl-C to stop)"
wait -n "${pids[@]}"
