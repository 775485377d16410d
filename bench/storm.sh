#!/bin/bash
# A slowloris against limen, measured: good clients' rate and p99 with and
# without one address holding stalled hellos, and limen's RSS before,
# during and after a storm of stalled hellos from many addresses.
#
# usage: bench/storm.sh [LIMEN_BIN] [STALLED=10000] [ATTACK=12000]
#   (default LIMEN_BIN: target/release/limen, built if absent)
# Needs the peerbench kit (bench/peerbench.sh sets it up) for its load
# generator and backend, python3 for the stalled clients, and a nofile limit
# above STALLED and ATTACK. Every phase is bounded in time; loopback only.
#
# 1. baseline: `pb hello`, 32 at a time for 5 s (router on CPU 1, load on 0).
# 2. attack: the same while 127.0.0.2 opens ATTACK connections that send 9
#    bytes of a hello and stall (the per-client budget admits 64).
# 3. storm: STALLED stalled hellos from 127.0.1.x, 50 per address (all
#    admitted: the listener budget is raised for it); RSS idle, with them
#    open, and 1, 10, 30 and 60 s after they close.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PB=${PEERBENCH_DIR:-${TMPDIR:-/tmp}/peerbench}
LIMEN=${1:-$ROOT/target/release/limen}
STALLED=${2:-10000}
ATTACK=${3:-12000}
PORT=8471
[ -x "$LIMEN" ] || (cd "$ROOT" && cargo build --release -q -p limen)
RUN=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$RUN"' EXIT
(cd "$ROOT" && cargo xtask guests > "$RUN/guests.log" 2>&1) || { cat "$RUN/guests.log"; exit 1; }

cat > "$RUN/limen.toml" <<CONF
[[listeners]]
name = "storm"
bind = "127.0.0.1:$PORT"

[policy]
module = "$ROOT/target/guests/static-routes.wasm"

[policy.config]
default = "127.0.0.1:9451"
routes = [{ match = 'a.test', upstream = "127.0.0.1:9451" }]

[limits]
max_connections = 30000
max_pending_hellos = $((STALLED + 1000))
hello_timeout = "120s"

[upstreams]
allow = ["127.0.0.1/32"]
CONF

taskset -c 0 "$PB/bin/pb" server --max-secs 400 --reply 127.0.0.1:9451=A > "$RUN/server.log" 2>&1 &
taskset -c 1 "$LIMEN" run --config "$RUN/limen.toml" > "$RUN/limen.log" 2>&1 &
LIMEN_PID=$!
sleep 2

good() {
  taskset -c 0 "$PB/bin/pb" hello --conc 32 --duration 5 --warmup 1 \
    --target "127.0.0.1:$PORT,$PB/hello/small-a.test.bin,A" | tail -1 |
    python3 -c 'import json, sys; r = json.load(sys.stdin)
print("rate %.0f/s  p99 %s us  max %s us  errors %s" % (r["rate"], r["p99_us"], r["max_us"], r["err"]))'
}

# stall FIRST_ADDR PER_ADDR COUNT HOLD_SECS: COUNT stalled hellos, then hold.
stall() {
  python3 - "$PORT" "$@" <<'PY'
import ipaddress, socket, sys, time
port, first, per, count, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
base = ipaddress.ip_address(first)
socks, refused = [], 0
for i in range(count):
    s = socket.socket()
    s.bind((str(base + i // per), 0))
    try:
        s.connect(("127.0.0.1", int(port)))
        s.send(bytes.fromhex("160301020001000200"))
        socks.append(s)
    except OSError:
        refused += 1
        s.close()
print(f"opened {len(socks)}, refused at connect {refused}", flush=True)
time.sleep(hold)
PY
}

rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$LIMEN_PID/status"; }

echo "== 1. baseline"
good
echo "== 2. one address holding $ATTACK stalled hellos"
stall 127.0.0.2 "$ATTACK" "$ATTACK" 9 &
ATTACKER=$!
sleep 3
good
wait $ATTACKER
echo "== 3. storm: $STALLED stalled hellos from $((STALLED / 50)) addresses"
sleep 3
echo "idle: $(rss)"
stall 127.0.1.0 50 "$STALLED" 4 > "$RUN/storm.log" &
STORM=$!
sleep 3.5
cat "$RUN/storm.log"
echo "during: $(rss)"
wait $STORM
START=$(date +%s)
for at in 1 10 30 60; do
  sleep $((START + at - $(date +%s)))
  echo "after ${at}s: $(rss)"
done
grep -o 'memory.trimmed.*' "$RUN/limen.log" | head -3 || true
