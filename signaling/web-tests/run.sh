#!/usr/bin/env bash
# Browser tests: builds signaling, bridge and recorder, installs Chromium/coturn/ffmpeg/
# playwright-core if missing (outside the network namespace), then runs everything inside
# `unshare -n` on loopback:
# signaling A (open, TURN configured) with two bridges, signaling B (JWT, guests allowed, no
# anonymous room creation), coturn, a recorder for A, and a group of two shards (signalings
# north and south, one bridge each, routing joins between them; both set the shared-notes
# link). Prints results and "N passed, N failed". The poor-connection check drops packets on the
# namespace's lo with iproute2's tc (a clsact qdisc and a cls_bpf filter; no netem needed).
# ONLY=recording,relay runs only the checks whose names start with one of those words;
# KEEP_LOGS=1 keeps the logs and recordings; SCREENSHOTS=dir saves screenshots.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${CONVENE_CACHE:-$HOME/.cache/convene}/target}"

if [[ "${CONVENE_IN_NETNS:-}" != 1 ]]; then
  # scripts/test.sh has built the whole workspace already (CONVENE_PREBUILT=1).
  if [[ "${CONVENE_PREBUILT:-}" != 1 ]]; then
    (cd "$ROOT" && cargo build -q -p convene-signaling -p convene-media --bin convene-signaling --bin convene-bridge --bin convene-recorder)
  fi
  if ! command -v chromium >/dev/null || ! command -v turnserver >/dev/null || ! command -v ffprobe >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium coturn ffmpeg fonts-dejavu-core >/dev/null
  fi
  if [[ ! -d "$HERE/node_modules/playwright-core" ]]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --silent)
  fi
  exec timeout 600 unshare -n env CONVENE_IN_NETNS=1 bash -c 'ip link set lo up; exec "$0"' "$0"
fi

BIN="$CARGO_TARGET_DIR/debug"
WORK="$(mktemp -d /tmp/convene-web-tests.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${KEEP_LOGS:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "logs in $WORK"; fi
}
trap cleanup EXIT INT TERM

SECRET=bridge-secret-$RANDOM$RANDOM
TURN_SECRET=turn-secret-$RANDOM$RANDOM
export JWT_SECRET=jwt-secret-$RANDOM$RANDOM
printf '%s\n' "$JWT_SECRET" > "$WORK/jwt.key"
export RUST_LOG="${RUST_LOG:-info}"

turnserver -n --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 \
  --min-port=40000 --max-port=40999 --use-auth-secret --static-auth-secret="$TURN_SECRET" \
  --realm=convene --allow-loopback-peers --no-cli --no-tls --no-dtls --log-file=stdout \
  > "$WORK/turn.log" 2>&1 &
pids+=($!)

SIG_A_ARGS=(--listen 127.0.0.1:18080 --bridge-secret "$SECRET" --turn-uris "turn:127.0.0.1:3478?transport=udp" --turn-secret "$TURN_SECRET")
"$BIN/convene-signaling" "${SIG_A_ARGS[@]}" > "$WORK/signaling-a.log" 2>&1 &
pids+=($!)
export SIGNALING_A_PID=$! SIGNALING_BIN="$BIN/convene-signaling" SIGNALING_A_LOG="$WORK/signaling-a2.log"
SIGNALING_A_ARGS="$(printf '%s\n' "${SIG_A_ARGS[@]}")"
export SIGNALING_A_ARGS
"$BIN/convene-signaling" --listen 127.0.0.1:18081 --bridge-secret "$SECRET" \
  --jwt-algorithm HS256 --jwt-key-file "$WORK/jwt.key" --jwt-issuer tests --jwt-audience convene \
  --allow-guests true --allow-anonymous-room-creation false > "$WORK/signaling-b.log" 2>&1 &
pids+=($!)
for port in 18080 18081; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

bridge_pids="" bridge_urls=""
for i in 1 2; do
  "$BIN/convene-bridge" --bind 127.0.0.1 --udp-port $((20000 + i * 10)) --tcp-port $((20001 + i * 10)) \
    --http-port $((19090 + i)) --address-source static --static-addresses 127.0.0.1 \
    --signaling-url ws://127.0.0.1:18080/bridge --secret "$SECRET" --bridge-id "bridge-$i" \
    --load-interval-s 1 > "$WORK/bridge-$i.log" 2>&1 &
  pids+=($!)
  bridge_pids+="bridge-$i=$!,"
  bridge_urls+="http://127.0.0.1:$((19090 + i))/,"
done
# A recorder for signaling A (the recording check): its files under $WORK/recordings, judged
# by test.mjs with ffprobe/ffmpeg (RECORDINGS_DIR).
export RECORDINGS_DIR="$WORK/recordings"
printf '%s\n' "$SECRET" > "$WORK/bridge.key"
RUST_LOG="${RUST_LOG},str0m=warn,dimpl=warn,is=warn" "$BIN/convene-recorder" \
  --signaling-url ws://127.0.0.1:18080/recorder --secret-file "$WORK/bridge.key" \
  --recordings-dir "$RECORDINGS_DIR" --capacity 2 --recorder-id recorder-1 --bind 127.0.0.1 \
  --udp-ports 21000-21009 --http-port 19095 > "$WORK/recorder.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/ready | grep -q "2 bridge.*1 recorder" && break; sleep 0.1; done
curl -sf http://127.0.0.1:18080/ready

# A group of two shards on loopback (issue 17), each signaling with its own bridge, one
# membership file (both Ready) and one group secret; both offer the shared-notes link.
printf 'group-secret-%s\n' "$RANDOM$RANDOM" > "$WORK/group.key"
GROUP_SHARDS=(north:18082 south:18083)
{
  printf '{"group":"meet","members":['
  sep=""
  for s in "${GROUP_SHARDS[@]}"; do
    printf '%s{"shard":"%s","url":"ws://127.0.0.1:%s/_shard/%s/ws","internalUrl":"http://127.0.0.1:%s","ready":true,"draining":false}' \
      "$sep" "${s%%:*}" "${s##*:}" "${s%%:*}" "${s##*:}"
    sep=","
  done
  printf ']}\n'
} > "$WORK/group.json"
i=3
for s in "${GROUP_SHARDS[@]}"; do
  name="${s%%:*}" port="${s##*:}"
  printf '%s\n' "web:" "  notesUrl: \"https://pad.example.com/p/convene-{room}\"" "routing:" "  group: meet" \
    "  shard: $name" "  membersFile: $WORK/group.json" "  secretFile: $WORK/group.key" > "$WORK/$name.yaml"
  "$BIN/convene-signaling" --config "$WORK/$name.yaml" --listen "127.0.0.1:$port" --bridge-secret "$SECRET" \
    > "$WORK/signaling-$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  "$BIN/convene-bridge" --bind 127.0.0.1 --udp-port $((20000 + i * 10)) --tcp-port $((20001 + i * 10)) \
    --http-port $((19090 + i)) --address-source static --static-addresses 127.0.0.1 \
    --signaling-url "ws://127.0.0.1:$port/bridge" --secret "$SECRET" --bridge-id "bridge-$name" \
    --load-interval-s 1 > "$WORK/bridge-$name.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
for s in "${GROUP_SHARDS[@]}"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${s##*:}/ready" | grep -q "1 bridge" && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:${s##*:}/ready"
done

set +e
BASE_URL=http://localhost:18080/ JWT_BASE_URL=http://localhost:18081/ BRIDGE_PIDS="$bridge_pids" BRIDGE_URLS="$bridge_urls" \
  GROUP_URLS=http://localhost:18082/,http://localhost:18083/ \
  timeout 420 node "$HERE/test.mjs"
rc=$?
set -e
if [[ $rc != 0 ]]; then
  echo "--- signaling-a.log (tail)"; tail -n 30 "$WORK/signaling-a.log"
  for i in 1 2; do echo "--- bridge-$i.log (tail)"; tail -n 15 "$WORK/bridge-$i.log"; done
  echo "--- recorder.log (tail)"; tail -n 20 "$WORK/recorder.log"
  for s in "${GROUP_SHARDS[@]}"; do echo "--- signaling-${s%%:*}.log (tail)"; tail -n 15 "$WORK/signaling-${s%%:*}.log"; done
fi
exit $rc
