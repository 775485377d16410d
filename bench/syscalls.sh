#!/bin/bash
# User and system CPU, and system calls, per routed connection: limen beside nginx-hc (nginx with
# proxy_half_close on: limen's semantics), HAProxy and plain nginx, on the peerbench
# kit's phase-b load (327 B recorded hellos, 32 at a time, a backend that
# answers one line and closes): /proc/PID/stat, then `strace -f -c`, on each
# router in turn.
#
# usage: [CONC=32] [ROUTERS=limen,nginx-hc,haproxy,nginx] bench/syscalls.sh [LIMEN_BIN] [SECONDS=4]
#   (default LIMEN_BIN: target/release/limen, built if absent)
# Needs the kit set up (bench/peerbench.sh does it) and strace. strace slows
# the router several times over: compare counts, never its times.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PB=${PEERBENCH_DIR:-${TMPDIR:-/tmp}/peerbench}
LIMEN=${1:-$ROOT/target/release/limen}
SECS=${2:-4}
ROUTERS=${ROUTERS:-limen,nginx-hc,haproxy,nginx}   # which of them
CONC=${CONC:-32}   # clients at a time (CONC=1: one connection at a time, every step a wake-up)
[ -x "$LIMEN" ] || (cd "$ROOT" && cargo build --release -q -p limen)
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
(cd "$ROOT" && cargo xtask guests > "$RUN/guests.log" 2>&1) || { cat "$RUN/guests.log"; exit 1; }
GUEST=$ROOT/target/guests/static-routes.wasm
printf 'a.test 127.0.0.1:9451\nb.test 127.0.0.1:9452\nc.test 127.0.0.1:9453\ndefault 127.0.0.1:9451\n' > "$RUN/routes"

# count ROUTER_NAME PORT COMMAND...: the router pinned to CPU 1, load and backend on CPU 0.
count() {
  local name=$1 port=$2; shift 2
  [[ ,$ROUTERS, == *,$name,* ]] || return 0
  taskset -c 0 "$PB/bin/pb" server --max-secs 60 --reply 127.0.0.1:9451=A \
    --reply 127.0.0.1:9452=B --reply 127.0.0.1:9453=C > "$RUN/server.log" 2>&1 &
  local server=$!
  taskset -c 1 "$@" > "$RUN/$name.log" 2>&1 &
  local router=$!
  sleep 1.5
  load() { # SECONDS WARMUP
    taskset -c 0 "$PB/bin/pb" hello --conc "$CONC" --duration "$1" --warmup "$2" \
      --target "127.0.0.1:$port,$PB/hello/small-a.test.bin,A" \
      --target "127.0.0.1:$port,$PB/hello/small-b.test.bin,B"
  }
  # The router and its children (nginx's worker): processes, then every thread.
  local procs threads
  procs=$(pstree -pT "$router" | grep -o '([0-9]*)' | tr -d '()' | tr '\n' ' ')
  threads=$(pstree -p "$router" | grep -o '([0-9]*)' | tr -d '()' | tr '\n' ' ')
  # First, untraced: user and system CPU per connection (/proc/PID/stat's
  # utime and stime, in clock ticks, summed over the tree).
  ticks() { for p in $procs; do cut -d' ' -f14,15 "/proc/$p/stat"; done | awk '{u += $1; s += $2} END {print u, s}'; }
  local t0 t1 done
  t0=$(ticks)
  done=$(load "$SECS" 0 | grep -o '"ok_total":[0-9]*' | cut -d: -f2)
  t1=$(ticks)
  awk -v a="$t0" -v b="$t1" -v n="$done" -v hz="$(getconf CLK_TCK)" -v name="$name" 'BEGIN {
      split(a, x, " "); split(b, y, " "); u = (y[1] - x[1]) / hz; s = (y[2] - x[2]) / hz
      printf "%s: %d connections untraced, per connection: user %.1f µs, system %.1f µs, total %.1f µs\n", name, n, 1e6*u/n, 1e6*s/n, 1e6*(u+s)/n }'
  # Then the same load traced.
  load $((SECS + 2)) 1 > "$RUN/load.log" 2>&1 &
  local load=$!
  sleep 1.2
  local pids
  pids=$(echo "$threads" | sed 's/\([0-9]\+\)/-p \1/g')
  # shellcheck disable=SC2086
  timeout "$SECS" strace -f -c $pids -o "$RUN/$name.strace" 2>/dev/null || true
  wait "$load" || true
  pkill -P "$router" 2>/dev/null || true
  kill "$router" "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  # Connections during the traced window: the accept4 calls that returned one.
  # Per connection: calls, and of them those that failed (EAGAIN mostly).
  awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
         calls[$NF] = $4; errors[$NF] = (NF == 6 ? $5 : 0); if ($NF == "accept4") conns = $4 - errors[$NF] }
       END { for (s in calls) { total += calls[s]; printf "  %-14s %6.2f  (failed %.2f)\n", s, calls[s] / conns, errors[s] / conns }
             printf "%d connections, %.2f system calls per connection\n", conns, total / conns > "/dev/stderr" }' \
    "$RUN/$name.strace" 2> "$RUN/$name.total" | sort -k2 -rn > "$RUN/$name.rows"
  echo "$name: $(cat "$RUN/$name.total")"
  cat "$RUN/$name.rows"
}

count limen 8449 bash -c "exec '$ROOT/bench/peerbench-limen.sh' '$LIMEN' '$GUEST' 8449 '$RUN/routes' '$RUN/limen'"
count nginx-hc 8442 "$PB/routers/nginx.sh" 8442 127.0.0.1:9451 127.0.0.1:9452 127.0.0.1:9453 "$RUN/nginx-hc" 1 halfclose
count haproxy 8444 "$PB/routers/haproxy.sh" 8444 127.0.0.1:9451 127.0.0.1:9452 127.0.0.1:9453 "$RUN/haproxy" 1
count nginx 8443 "$PB/routers/nginx.sh" 8443 127.0.0.1:9451 127.0.0.1:9452 127.0.0.1:9453 "$RUN/nginx"
