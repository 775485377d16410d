#!/bin/bash
# QUIC through a router, limen next to nginx's stream UDP proxy (which reads
# no SNI: the floor for relaying datagrams), in one run, loopback only,
# every loop bounded.
#
#   bench/quic.sh LIMEN_BIN GUEST_WASM [COUNT=300000] [FLOWS=2000] [REPS=2]
#
# relay: one client sends Chromium 148's captured Initial flight (so limen
#   reads a real post-quantum hello and makes a flow), then COUNT 1200-byte
#   datagrams as fast as one Python sender goes; the upstream is a counting
#   sink. Router CPU-s per GiB sent and per GiB delivered (a router that
#   cannot keep up drops at its socket, which costs it little).
#   The direct row sends to the sink itself: what the sender and sink
#   manage with no router between them (the ceiling of the other rows).
# flows: FLOWS clients each send that flight from a port of their own and
#   stay, one every $PACE seconds (default 0.5 ms: a burst would measure the
#   datagrams held while thousands of hellos are read at once, not an idle
#   flow): router CPU per new flow, and RSS per idle flow. The sink shows
#   every flow was made (two datagrams each reach it). The limen-tcp row
#   is the same limen, same policy and route, taking FLOWS TCP connections
#   that each send a 1.8 KB TLS hello for the same name: a QUIC flow's setup
#   beside a TCP connection's, in one run.
# Both routers run one worker pinned to $ROUTER_CPUS (default 1); load and
# sink share $LOAD_CPUS (default 0). CPU is the router's threads' on-CPU
# time (/proc/PID/task/*/schedstat).
set -euo pipefail
LIMEN=$1 GUEST=$2 COUNT=${3:-300000} FLOWS=${4:-2000} REPS=${5:-2}
ROUTER_CPUS=${ROUTER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} PACE=${PACE:-0.0005}
(( COUNT <= 2000000 && FLOWS <= 20000 && REPS <= 9 )) || { echo "COUNT <= 2e6, FLOWS <= 2e4, REPS <= 9"; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
Q=${LIMEN_SHARED:-$ROOT/../shared}/testdata/quic
FLIGHT=("$Q/chromium148-pq-1of2.bin" "$Q/chromium148-pq-2of2.bin")
LOAD="$ROOT/bench/quic_load.py"
RUN=$(mktemp -d /tmp/limen-quic.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
HELLO=${LIMEN_SHARED:-$ROOT/../shared}/peerbench/hello/large-a.test.bin
# The sink takes UDP and TCP on one port, so one route serves both listeners.
SINK=127.0.0.1:9491 NGINX=127.0.0.1:8493 LIMEN_ADDR=127.0.0.1:8494 LIMEN_TCP=127.0.0.1:8495

mkdir -p "$RUN/nginx"
cat > "$RUN/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
worker_rlimit_nofile 65536;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log error;
events { worker_connections 65536; }
stream {
    server {
        listen $NGINX udp rcvbuf=4m;
        proxy_pass $SINK;
        proxy_responses 0;
        proxy_timeout 60s;
    }
}
CONF
cat > "$RUN/limen.toml" <<CONF
workers = 1
[[listeners]]
name = "quic"
bind = "$LIMEN_ADDR"
protocol = "quic"
[[listeners]]
name = "tcp"
bind = "$LIMEN_TCP"
[policy]
module = "$GUEST"
[policy.config]
routes = [{ match = "a.test", upstream = "$SINK" }]
[upstreams]
allow = ["127.0.0.1/32"]
[limits]
max_flows = $((FLOWS + 100))
max_connections = $((FLOWS + 100))
max_pending_initials = $((FLOWS + 100))
max_pending_initials_per_client = $((FLOWS + 100))
flow_idle_timeout = "60s"
CONF

ulimit -n 65536 2>/dev/null || true
taskset -c "$ROUTER_CPUS" nginx -c "$RUN/nginx.conf" -p "$RUN/nginx" & PIDS+=($!); NGINX_PID=$!
taskset -c "$ROUTER_CPUS" "$LIMEN" run --config "$RUN/limen.toml" > "$RUN/limen.log" 2>&1 & PIDS+=($!); LIMEN_PID=$!
sleep 3

# On-CPU time of every thread, in seconds (schedstat: nanoseconds, finer
# than /proc/PID/stat's clock ticks, which a 1,000-flow run barely moves).
cpu() { [ "$1" = - ] && { echo 0; return; }; cat /proc/"$1"/task/*/schedstat | awk '{ns += $1} END {printf "%.6f", ns / 1e9}'; }
rss() { [ "$1" = - ] && { echo 0; return; }; awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

relay() { # NAME PID ADDR (PID "-": no router)
    taskset -c "$LOAD_CPUS" python3 "$LOAD" sink --bind $SINK --seconds 2 > "$RUN/sink.out" & local sink=$!
    sleep 0.5
    local before; before=$(cpu "$2")
    local sent; sent=$(taskset -c "$LOAD_CPUS" python3 "$LOAD" relay --to "$3" --count "$COUNT" --initial "${FLIGHT[@]}")
    wait $sink
    local after; after=$(cpu "$2")
    read -r _ n bytes took <<< "$sent"
    read -r _ got _ < <(tail -1 "$RUN/sink.out")
    awk -v c="$(echo "$after - $before" | bc)" -v b="$bytes" -v n="$n" -v g="$got" -v name="$1" -v t="$took" \
        'BEGIN { printf "%-9s relay: %8d sent in %.2f s, %8d at the sink (%.1f%%)", name, n, t, g, 100*g/n
                 if (name == "direct") { print ", no router"; exit }
                 printf ", router %.3f CPU-s = %.2f CPU-s/GiB sent, %.2f per GiB delivered\n", c, c/(b/1073741824), c/(g*(b/n)/1073741824) }'
}

flows() { # NAME PID ADDR [tcp]: UDP flows, or TCP connections to the sink's TCP side
    local what=(--initial "${FLIGHT[@]}") unit=flow mode=sink
    [ "${4:-}" = tcp ] && what=(--tcp "$HELLO") unit=connection mode=tcpsink
    taskset -c "$LOAD_CPUS" python3 "$LOAD" $mode --bind $SINK --seconds 8 > "$RUN/sink.out" & local sink=$!
    sleep 0.5
    local rss0; rss0=$(rss "$2")
    local before; before=$(cpu "$2")
    taskset -c "$LOAD_CPUS" python3 "$LOAD" flows --to "$3" --count "$FLOWS" "${what[@]}" --pace "$PACE" --hold 8 > "$RUN/flows.out" & local load=$!
    sleep $(echo "$FLOWS * $PACE + 3" | bc)
    local after; after=$(cpu "$2")
    local rss1; rss1=$(rss "$2")
    wait $load $sink
    awk -v c="$(echo "$after - $before" | bc)" -v f="$FLOWS" -v r0="$rss0" -v r1="$rss1" -v name="$1" -v u="$unit" -v s="$(tail -1 "$RUN/sink.out")" \
        'BEGIN { printf "%-9s %ss: %d, router %.1f µs CPU per new %s, RSS +%d KiB = %.2f KiB per idle %s (sink: %s)\n", name, u, f, 1e6*c/f, u, r1-r0, (r1-r0)/f, u, s }'
}

echo "== quic: $COUNT datagrams, $FLOWS flows, $REPS reps; router on CPU $ROUTER_CPUS, load on $LOAD_CPUS"
echo "foreign CPU (load average, 1 min): $(cut -d' ' -f1 /proc/loadavg)"
for rep in $(seq "$REPS"); do
    echo "-- rep $rep"
    relay direct - "$SINK"
    relay nginx "$NGINX_PID" "$NGINX"
    relay limen "$LIMEN_PID" "$LIMEN_ADDR"
done
# Flows last (each run leaves FLOWS idle flows behind until their timeout).
flows nginx "$NGINX_PID" "$NGINX"
flows limen "$LIMEN_PID" "$LIMEN_ADDR"
flows limen-tcp "$LIMEN_PID" "$LIMEN_TCP" tcp
