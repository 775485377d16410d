#!/bin/bash
# What active health checks cost: limen's CPU while it checks a pool of N
# members (TCP, every second) that accept and close, beside the same limen
# with no pool, each measured over SECS seconds from /proc (user + system).
#
#   bench/health.sh LIMEN_BIN [N=1000] [SECS=30]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bin=$1 n=${2:-1000} secs=${3:-30}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
(cd "$ROOT" && cargo xtask guests >/dev/null)
# N members on 127.0.0.1:20000.., accepting and closing, bounded in time.
python3 - "$n" "$((secs * 2 + 60))" > "$dir/ports" <<'PY' &
import selectors, socket, sys, time
n, until = int(sys.argv[1]), time.time() + int(sys.argv[2])
sel, ports = selectors.DefaultSelector(), []
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 20000 + i)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ); ports.append(20000 + i)
print(" ".join(map(str, ports)), flush=True)
while time.time() < until:
    for key, _ in sel.select(1):
        try: key.fileobj.accept()[0].close()
        except BlockingIOError: pass
PY
until [ -s "$dir/ports" ]; do sleep 0.2; done
members=$(for p in $(cat "$dir/ports"); do printf '"127.0.0.1:%s", ' "$p"; done)
measure() { # name, extra config -> prints CPU ms per second
  cat > "$dir/$1.toml" <<CONF
workers = 1
[[listeners]]
name = "bench"
bind = "127.0.0.1:0"
[policy]
module = "$ROOT/target/guests/static-routes.wasm"
[policy.config]
default = "127.0.0.1:9"
[upstreams]
allow = ["127.0.0.1/32"]
$2
CONF
  RUST_LOG=warn "$bin" run --config "$dir/$1.toml" & local pid=$!
  sleep 3
  local t0; t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$secs"
  local t1; t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local hz; hz=$(getconf CLK_TCK)
  awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" -v n="$3" -v name="$1" 'BEGIN {
    ms = d * 1000 / hz / s
    printf "%-12s %7.2f ms CPU per second", name, ms
    if (n > 0) printf "  (%.1f us per member check)", ms * 1000 / n
    printf "\n" }'
}
measure idle "" 0
measure "pool-$n" "[upstreams.pools.web]
members = [${members%, }]
[upstreams.pools.web.health]
check = \"tcp\"
interval = \"1s\"
timeout = \"500ms\"" "$n"
