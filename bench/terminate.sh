#!/bin/bash
# TLS termination, limen next to nginx and HAProxy, in one run (loopback
# only, bounded): handshakes, then bytes through a terminated connection.
#
#   bench/terminate.sh LIMEN_BIN GUEST_WASM [DURATION_S=10] [REPS=3] [CONC=32]
#   BULK_MB=256 BULK_GETS=4: each rep also downloads BULK_GETS times a
#   BULK_MB file through each router (curl, TLS 1.3, the plaintext upstream
#   sends it with sendfile): router CPU-s per GiB delivered.
#
# Both routers terminate the same ECDSA P-256 certificate (peerbench's a.test),
# TLS 1.3 only, no session cache or tickets in nginx and none resumed by the
# client, and forward the plaintext to the same plain HTTP backend (nginx,
# `return 200 "A\n"`). nginx terminates in its stream module (one worker),
# the L4 equivalent of limen's terminate; HAProxy in `mode tcp` with `ssl` on
# its bind (one thread, no session cache or tickets). The load generator is peerbench's
# `pb tls` (rustls client, full handshake + GET + read to EOF per connection,
# body checked). Routers run pinned to $ROUTER_CPUS (default 1), load and
# backend to $LOAD_CPUS (default 0). Router CPU = schedstat on-CPU time of the
# router's process tree during the measured window / handshakes completed.
# Needs ../shared/peerbench set up (./setup.sh) in $PEERBENCH_DIR (default /tmp/peerbench).
set -euo pipefail
LIMEN=$1 GUEST=$2 DUR=${3:-10} REPS=${4:-3} CONC=${5:-32}
PB=${PEERBENCH_DIR:-/tmp/peerbench}
ROUTER_CPUS=${ROUTER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
(( DUR <= 60 && REPS <= 9 && CONC <= 256 )) || { echo "duration <= 60 s, reps <= 9, conc <= 256"; exit 2; }
[ -x "$PB/bin/pb" ] && [ -s "$PB/certs/a.crt" ] || { echo "set up peerbench first ($PB)"; exit 2; }
RUN=$(mktemp -d /tmp/limen-terminate.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT

BACKEND=127.0.0.1:9481 NGINX_PORT=8491 LIMEN_PORT=8492 HAPROXY_PORT=8490
BULK_MB=${BULK_MB:-256} BULK_GETS=${BULK_GETS:-4}
(( BULK_MB <= 1024 && BULK_GETS <= 16 )) || { echo "BULK_MB <= 1024, BULK_GETS <= 16"; exit 2; }
head -c $((BULK_MB << 20)) /dev/zero > "$RUN/big"
chmod 755 "$RUN"; chmod 644 "$RUN/big"   # read by the backend's workers (nobody)
mkdir -p "$RUN/backend/tmp" "$RUN/nginx/tmp"
cat > "$RUN/backend.conf" <<CONF
worker_processes 1;
pid $RUN/backend/nginx.pid;
error_log $RUN/backend/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $RUN/backend/tmp/body; proxy_temp_path $RUN/backend/tmp/proxy;
    fastcgi_temp_path $RUN/backend/tmp/fcgi; uwsgi_temp_path $RUN/backend/tmp/uwsgi; scgi_temp_path $RUN/backend/tmp/scgi;
    sendfile on;
    server {
        listen $BACKEND backlog=4096;
        location = /big { alias $RUN/big; }
        location / { return 200 "A\n"; }
    }
}
CONF
cat > "$RUN/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log error;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
        ssl_certificate $PB/certs/a.crt;
        ssl_certificate_key $PB/certs/a.key;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        proxy_pass $BACKEND;
    }
}
CONF
cat "$PB/certs/a.crt" "$PB/certs/a.key" > "$RUN/a.pem"
cat > "$RUN/haproxy.cfg" <<CONF
global
    maxconn 4096
    nbthread 1
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $RUN/a.pem backlog 4096
    default_backend plain
backend plain
    server s1 $BACKEND
CONF
cat > "$RUN/limen.toml" <<CONF
[[listeners]]
name = "bench"
bind = "127.0.0.1:$LIMEN_PORT"
[policy]
module = "$GUEST"
[policy.config]
routes = [ { match = "a.test", terminate = { certificate = "a", upstream = "$BACKEND" } } ]
[certificates.a]
chain = "$PB/certs/a.crt"
key = "$PB/certs/a.key"
[limits]
max_connections = 20000
[upstreams]
allow = ["127.0.0.1/32"]
CONF
chmod 600 "$PB/certs/a.key"

cpu_ns() {  # on-CPU ns of a process and its children, all threads
  local sum=0 pid
  for pid in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    for f in /proc/"$pid"/task/*/schedstat; do
      [ -r "$f" ] && sum=$((sum + $(cut -d' ' -f1 "$f" 2>/dev/null || echo 0)))
    done
  done
  echo $sum
}
waitport() { "$PB/bin/pb" waitport --addr "127.0.0.1:$1" --secs 20 >/dev/null; }

taskset -c "$LOAD_CPUS" nginx -p "$RUN/backend" -c "$RUN/backend.conf" -e "$RUN/backend/error.log" -g 'daemon off;' &
PIDS+=($!)
waitport 9481
"$LIMEN" check --config "$RUN/limen.toml" >/dev/null

measure() {  # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c "$ROUTER_CPUS" "$@" &
  local pid=$!
  PIDS+=($pid)
  waitport "$port"
  # 1 s warm-up handshakes, not measured.
  taskset -c "$LOAD_CPUS" "$PB/bin/pb" tls --target "127.0.0.1:$port,a.test,A" --conc "$CONC" \
      --duration 1 --warmup 0 --ca "$PB/certs/ca.crt" >/dev/null
  local c0 c1 out
  c0=$(cpu_ns "$pid")
  out=$(taskset -c "$LOAD_CPUS" "$PB/bin/pb" tls --target "127.0.0.1:$port,a.test,A" --conc "$CONC" \
      --duration "$DUR" --warmup 0 --ca "$PB/certs/ca.crt")
  c1=$(cpu_ns "$pid")
  python3 - "$name" "$out" "$c0" "$c1" <<'PY'
import json, sys
name, out, c0, c1 = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu_s = (c1 - c0) / 1e9
ok = out["ok_total"]
print(f"{name:7} handshakes/s {out['rate']:8.1f}  router CPU {cpu_s:6.2f} s = {cpu_s / out['window_s']:4.2f} cores"
      f"  {1e6 * cpu_s / max(ok, 1):6.1f} us/handshake  -> {ok / max(cpu_s, 1e-9):7.0f} handshakes per CPU-second"
      f"  p50 {out['p50_us']} us  p99 {out['p99_us']} us  errors {out['err']} {out['errors']}")
PY
  # Bytes: one download at a time, the router's CPU over all of them.
  local got=0 took=0 one
  c0=$(cpu_ns "$pid")
  for _ in $(seq "$BULK_GETS"); do
    one=$(taskset -c "$LOAD_CPUS" curl -sS --max-time 60 --cacert "$PB/certs/ca.crt" \
        --resolve "a.test:$port:127.0.0.1" "https://a.test:$port/big" -o /dev/null \
        -w '%{size_download} %{time_total}') || one="0 0"
    got=$((got + ${one% *})); took=$(echo "$took + ${one#* }" | bc)
  done
  c1=$(cpu_ns "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v name="$name" -v c="$(( c1 - c0 ))" -v b="$got" -v t="$took" -v want="$((BULK_GETS * BULK_MB << 20))" 'BEGIN {
      printf "%-7s bulk: %d of %d bytes in %.2f s (%.0f MiB/s), router %.3f CPU-s = %.2f CPU-s per GiB\n",
             name, b, want, t, b / 1048576 / (t > 0 ? t : 1), c / 1e9, (c / 1e9) / (b > 0 ? b / 1073741824 : 1) }'
}

echo "conc $CONC, ${DUR}s per run, ${BULK_GETS}x ${BULK_MB} MiB downloads, router on CPU $ROUTER_CPUS, load + backend on CPU $LOAD_CPUS"
echo "foreign CPU (load average, 1 min): $(cut -d' ' -f1 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  measure nginx $NGINX_PORT nginx -p "$RUN/nginx" -c "$RUN/nginx.conf" -e "$RUN/nginx/error.log" -g 'daemon off;'
  measure haproxy $HAPROXY_PORT haproxy -db -f "$RUN/haproxy.cfg"
  RUST_LOG=warn measure limen $LIMEN_PORT "$LIMEN" run --config "$RUN/limen.toml"
done
