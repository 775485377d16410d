#!/bin/bash
# What a pool costs on the connection path: peerbench phase b (router CPU per
# connection, recorded hellos) with limen routing to single addresses beside
# limen routing to 3-member round-robin pools, in one run.
#
#   bench/pools.sh LIMEN_BIN [-- run.sh options, e.g. --reps 3 --dur 5]
#
# The pools' extra members (127.0.0.1:9551-9553 and 9651-9653, replying as
# the kit's A/B/C) run for at most 20 minutes, pinned with the kit's backends.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERBENCH_SRC:-$ROOT/../shared/peerbench}
PB=${PEERBENCH_DIR:-${TMPDIR:-/tmp}/peerbench}
bin=$1; shift; [ "${1:-}" = -- ] && shift
[ -x "$PB/bin/pb" ] || bash "$KIT/setup.sh"
(cd "$ROOT" && cargo xtask guests >/dev/null)
guest=$ROOT/target/guests/static-routes.wasm
taskset -c "${LOAD_CPUS:-0}" "$PB/bin/pb" server --max-secs 1200 \
  --reply 127.0.0.1:9551=A --reply 127.0.0.1:9552=B --reply 127.0.0.1:9553=C \
  --reply 127.0.0.1:9651=A --reply 127.0.0.1:9652=B --reply 127.0.0.1:9653=C >/dev/null 2>&1 &
extra=$!
trap 'kill $extra 2>/dev/null' EXIT
router="$ROOT/bench/peerbench-limen.sh $bin $guest {PORT} {ROUTES} {RUNDIR}"
cd "$PB"
./run.sh --routers direct,nginx,haproxy \
  --router "limen=8449=env RUST_LOG=warn $router" \
  --router "limen-pool3=8450=env RUST_LOG=warn LIMEN_POOL_MEMBERS=3 $router" \
  --phases b "$@"
