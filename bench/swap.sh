#!/usr/bin/env bash
# Time from trigger to live for one policy module, cold (never compiled) and
# from the compile cache, for both triggers (`limen swap` and the file
# watch), plus start-up cold and cached.
#
#   bench/swap.sh LIMEN MODULE [REPS]
#
# LIMEN: a release build (CARGO_TARGET_DIR=/tmp/limen-release cargo build
# --release -p limen). MODULE: any policy whose init accepts
# {"default": "HOST:PORT"} (static-routes, regex-services without rules...).
# Each cold rep swaps in a never-seen variant of MODULE: the same component
# with a custom section appended (a different hash, so a real compile).
# Figures are limen's own (`total_ms`: request complete or first file event
# -> live, debounce included), and the client's wall time for `limen swap`.
set -euo pipefail
LIMEN=$(realpath "$1")
MODULE=$(realpath "$2")
REPS=${3:-5}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A variant of MODULE: a top-level custom section named limen-bench-$1.
variant() {
  python3 - "$MODULE" "$1" "$2" <<'EOF'
import sys
src, tag, out = sys.argv[1], sys.argv[2], sys.argv[3]
def leb(n):
    b = bytearray()
    while True:
        byte, n = n & 0x7f, n >> 7
        b.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(b)
name = f"limen-bench-{tag}".encode()
body = leb(len(name)) + name
open(out, "wb").write(open(src, "rb").read() + b"\x00" + leb(len(body)) + body)
EOF
}

cp "$MODULE" "$work/policy.wasm"
cat > "$work/limen.toml" <<EOF
[[listeners]]
name = "bench"
bind = "127.0.0.1:0"
[policy]
module = "$work/policy.wasm"
cache = "$work/cache"
fuel = 100_000_000
timeout = "100ms"
memory = "256MiB"
[policy.config]
default = "127.0.0.1:9451"
[upstreams]
allow = ["127.0.0.1/32"]
[admin]
socket = "$work/admin.sock"
EOF

start() {
  : > "$work/log"
  local t0; t0=$(date +%s%N)
  "$LIMEN" --log-format json run -c "$work/limen.toml" 2>"$work/log" & pid=$!
  until "$LIMEN" status --admin "$work/admin.sock" >/dev/null 2>&1; do sleep 0.005; done
  local t1; t1=$(date +%s%N)
  local live; live=$(grep '"policy live"' "$work/log" | jq -r '.fields | "\(.compiled_from) compile \(.compile_ms) ms, init \(.init_ms) ms"')
  echo "start ($1): $(( (t1 - t0) / 1000000 )) ms to answering; $live"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }

echo "module: $MODULE ($(stat -c %s "$MODULE") bytes), $REPS reps"
rm -rf "$work/cache"
start cold
stop
start cached

admin_swap() { # FILE -> "total_ms wall_ms compiled_from"
  local t0 t1 out
  t0=$(date +%s%N)
  out=$("$LIMEN" swap --admin "$work/admin.sock" --module "$1")
  t1=$(date +%s%N)
  echo "$out" | jq -r --arg wall "$(( (t1 - t0) / 1000 ))" '"\(.total_ms) \($wall | tonumber / 1000) \(.compiled_from)"'
}

file_swap() { # FILE -> "total_ms compiled_from" from limen's log
  local before; before=$(grep -c '"trigger":"file"' "$work/log" || true)
  cp "$1" "$work/policy.wasm.new" && mv "$work/policy.wasm.new" "$work/policy.wasm"
  until [ "$(grep -c '"trigger":"file"' "$work/log" || true)" -gt "$before" ]; do sleep 0.005; done
  grep '"trigger":"file"' "$work/log" | tail -1 | jq -r '.fields | "\(.total_ms) \(.compiled_from)"'
}

: > "$work/admin_cold"; : > "$work/admin_cached"; : > "$work/file_cold"; : > "$work/file_cached"
for i in $(seq 1 "$REPS"); do
  variant "admin-$i" "$work/v.wasm"
  admin_swap "$work/v.wasm" >> "$work/admin_cold"
  admin_swap "$MODULE" >> "$work/admin_cached"
  variant "file-$i" "$work/f.wasm"
  file_swap "$work/f.wasm" >> "$work/file_cold"
  file_swap "$MODULE" >> "$work/file_cached"
done
stop

for kind in admin_cold admin_cached; do
  echo "$kind: limen total_ms median $(cut -d' ' -f1 "$work/$kind" | median)," \
       "limen swap wall ms median $(cut -d' ' -f2 "$work/$kind" | median)," \
       "from: $(cut -d' ' -f3 "$work/$kind" | sort | uniq -c | xargs)"
done
for kind in file_cold file_cached; do
  echo "$kind: limen total_ms (first event -> live, debounce included) median $(cut -d' ' -f1 "$work/$kind" | median)," \
       "from: $(cut -d' ' -f2 "$work/$kind" | sort | uniq -c | xargs)"
done
