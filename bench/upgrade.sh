#!/bin/bash
# Connections refused or reset while each router replaces its own process
# under load, in one run, with the kit's routes and backends (peerbench
# phase b: `pb hello`, the small ClientHello, a/b/c rotating, 32 at a time):
#   limen     `limen upgrade`: the new process takes every socket over SCM_RIGHTS
#   haproxy   seamless reload: master-worker (-W), `expose-fd listeners` on the
#             stats socket, so each new worker takes the listeners (-x); USR2 to the master
#   nginx-hc  binary upgrade: USR2 to the master (a new master inherits the
#             listening sockets), then QUIT to the old one; proxy_half_close on
#
#   bench/upgrade.sh [LIMEN_BIN] [UPGRADES=5] [GAP_S=1]
#   SPLIT=1 bench/upgrade.sh ...   the 1,840 B hello in two writes 1 ms apart
#                                  (more connections caught mid-hello)
#
# For each router: UPGRADES replacements GAP_S apart during one load run;
# the table gives the replacements that happened (the serving process
# changed), the connections answered, and the client errors (pb's count and
# kinds: refused, reset, wrong or missing reply). Goal: 0 errors.
# Router on CPU 1, load and backends on CPU 0 (as peerbench). Bounded: the
# load runs UPGRADES*GAP_S+2 seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERBENCH_SRC:-$ROOT/../shared/peerbench}
PB=${PEERBENCH_DIR:-${TMPDIR:-/tmp}/peerbench}
LIMEN=${1:-$ROOT/target/release/limen}
UPGRADES=${2:-5}
GAP=${3:-1}
[ -x "$LIMEN" ] || (cd "$ROOT" && cargo build --release -q -p limen)
[ -x "$PB/bin/pb" ] || bash "$KIT/setup.sh"
(cd "$ROOT" && cargo xtask guests >/dev/null)
GUEST=$ROOT/target/guests/static-routes.wasm
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "$work/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

taskset -c 0 "$PB/bin/pb" server --max-secs 600 \
  --reply 127.0.0.1:9451=A --reply 127.0.0.1:9452=B --reply 127.0.0.1:9453=C \
  > "$work/server.log" 2>&1 &
pids+=($!)
for port in 9451 9452 9453; do "$PB/bin/pb" waitport --addr 127.0.0.1:$port --secs 10 >/dev/null; done
printf 'a.test 127.0.0.1:9451\nb.test 127.0.0.1:9452\nc.test 127.0.0.1:9453\ndefault 127.0.0.1:9451\n' \
  > "$work/routes.txt"

# A stand-in that only lets a kit script write its config (then the real
# router is started here, as each upgrade method needs it).
mkdir -p "$work/fake"
printf '#!/bin/sh\nexit 0\n' > "$work/fake/haproxy"; cp "$work/fake/haproxy" "$work/fake/nginx"
chmod +x "$work/fake/haproxy" "$work/fake/nginx"

start_limen() { # PORT RUNDIR
  mkdir -p "$2"
  LIMEN_CONFIG_EXTRA="[admin]
socket = \"$2/admin.sock\"" RUST_LOG=warn taskset -c 1 \
    "$ROOT/bench/peerbench-limen.sh" "$LIMEN" "$GUEST" "$1" "$work/routes.txt" "$2" > "$2/log" 2>&1 &
}
serving_limen() { "$LIMEN" status --admin "$1/admin.sock" 2>/dev/null | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' || true; }
upgrade_limen() { "$LIMEN" upgrade --admin "$1/admin.sock" > "$1/upgrade.out" 2>&1; }

start_haproxy() {
  PATH=$work/fake:$PATH bash "$PB/routers/haproxy.sh" "$1" 127.0.0.1:9451 127.0.0.1:9452 127.0.0.1:9453 "$2"
  sed -i "s|^global|global\n    stats socket $2/haproxy.sock mode 600 level admin expose-fd listeners|" "$2/haproxy.cfg"
  taskset -c 1 haproxy -W -db -f "$2/haproxy.cfg" > "$2/log" 2>&1 &
  echo $! > "$2/master.pid"
}
serving_haproxy() { pgrep -P "$(cat "$1/master.pid")" | sort -n | tail -1 || true; }
upgrade_haproxy() { kill -USR2 "$(cat "$1/master.pid")"; }

start_nginx() {
  PATH=$work/fake:$PATH bash "$PB/routers/nginx.sh" "$1" 127.0.0.1:9451 127.0.0.1:9452 127.0.0.1:9453 "$2" 1 halfclose
  # By its full path: the binary upgrade re-executes argv[0] as given.
  taskset -c 1 "$(command -v nginx)" -p "$2" -c "$2/nginx.conf" -e "$2/error.log" > "$2/log" 2>&1
}
serving_nginx() { cat "$1/nginx.pid" 2>/dev/null || true; }
upgrade_nginx() {
  local old; old=$(cat "$1/nginx.pid")
  kill -USR2 "$old"
  # The new master writes nginx.pid once it runs (the old one's is now
  # nginx.pid.oldbin); then the old one stops gracefully.
  for _ in $(seq 100); do
    [ -f "$1/nginx.pid" ] && [ "$(cat "$1/nginx.pid")" != "$old" ] && break
    sleep 0.05
  done
  kill -QUIT "$old"
}

stop_all() { # RUNDIR: every process whose command line names it
  pkill -f "$1/" 2>/dev/null || true
  [ -f "$1/nginx.pid" ] && kill -QUIT "$(cat "$1/nginx.pid")" 2>/dev/null || true
  [ -f "$1/master.pid" ] && kill "$(cat "$1/master.pid")" 2>/dev/null || true
  sleep 1
}

dur=$(python3 -c "import math,sys; print(math.ceil($UPGRADES * $GAP) + 2)")
H=$PB/hello/small split=()
[ -z "${SPLIT:-}" ] || { H=$PB/hello/large; split=(--split-at 1448 --gap-ms 1); }
targets="--target 127.0.0.1:PORT,$H-a.test.bin,A --target 127.0.0.1:PORT,$H-b.test.bin,B --target 127.0.0.1:PORT,$H-c.test.bin,C"
echo "load: pb hello --conc 32 ${split[*]} for ${dur}s; $UPGRADES replacements ${GAP}s apart; load average $(cut -d' ' -f1 /proc/loadavg)"
printf '| router | method | replaced | connections | errors | error kinds |\n|---|---|---:|---:|---:|---|\n' > "$work/table.md"
port=8460
for router in limen haproxy nginx; do
  port=$((port + 1))
  rd=$work/$router; mkdir -p "$rd"
  "start_$router" $port "$rd"
  "$PB/bin/pb" waitport --addr 127.0.0.1:$port --secs 20 >/dev/null
  sleep 0.5
  first=$("serving_$router" "$rd")
  taskset -c 0 "$PB/bin/pb" hello --conc 32 --duration $dur --warmup 0 "${split[@]}" ${targets//PORT/$port} > "$rd/load.json" &
  load=$!
  sleep 1
  replaced=0 last=$first
  for _ in $(seq "$UPGRADES"); do
    "upgrade_$router" "$rd" || echo "$router: upgrade command failed: $(cat "$rd/upgrade.out" 2>/dev/null)"
    sleep "$GAP"
    now=$("serving_$router" "$rd")
    [ -n "$now" ] && [ "$now" != "$last" ] && replaced=$((replaced + 1))
    last=$now
  done
  wait $load
  read -r ok err kinds < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["ok_total"], r["err"], r["errors"] or "-")' "$rd/load.json")
  method=$(case $router in limen) echo "limen upgrade";; haproxy) echo "-W, expose-fd listeners, USR2";; nginx) echo "USR2 + QUIT (nginx-hc)";; esac)
  printf '| %s | %s | %d of %d | %d | %d | %s |\n' "$router" "$method" $replaced "$UPGRADES" "$ok" "$err" "$kinds" >> "$work/table.md"
  stop_all "$rd"
done
cat "$work/table.md"
