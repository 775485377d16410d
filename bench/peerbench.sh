#!/bin/bash
# limen beside nginx, nginx-hc, HAProxy and HAProxy with splice, in one peerbench run:
# phases b (router CPU per connection), c (bulk CPU per GiB) and d (memory per
# connection), then the kit's table (results/<stamp>/table.md).
#
#   bench/peerbench.sh [LIMEN_BIN ...] [-- run.sh options]
#   e.g. bench/peerbench.sh /tmp/limen-base target/release/limen -- --reps 2 --dur 5
#   PEERBENCH_PEERS=direct,nginx-hc,haproxy PEERBENCH_PHASES=b bench/peerbench.sh OLD NEW
#   (a --routers among the run.sh options would drop the limen routers)
#   Scaling: a LIMEN_BIN written BIN#N runs with `workers = N` (router limen-wN):
#   ROUTER_CPUS=0-1 PEERBENCH_PEERS=nginx-auto,haproxy-auto PEERBENCH_PHASES=b \
#     bench/peerbench.sh target/release/limen#1 target/release/limen#2
#
# Each LIMEN_BIN is a router of its own (named limen, limen2, ...; ports 8449+),
# so a before/after pair is measured in the same run. Default: a release
# build of this checkout (built if missing). The kit is set up in
# ${PEERBENCH_DIR:-/tmp/peerbench} from ../shared/peerbench if it is not yet.
# Quote ratios only from one run, and check its "foreign CPU" line: a loaded
# machine gives no figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERBENCH_SRC:-$ROOT/../shared/peerbench}
PB=${PEERBENCH_DIR:-${TMPDIR:-/tmp}/peerbench}
bins=() extra=()
while [ $# -gt 0 ]; do
  case $1 in --) shift; extra=("$@"); break;; *) bins+=("$1"); shift;; esac
done
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$ROOT" && cargo build --release -q -p limen)
  bins=("$ROOT/target/release/limen")
fi
[ -x "$PB/bin/pb" ] || bash "$KIT/setup.sh"
(cd "$ROOT" && cargo xtask guests >/dev/null)
guest=$ROOT/target/guests/static-routes.wasm
routers=() port=8449 n=0
for spec in "${bins[@]}"; do
  # BIN#N: that binary with `workers = N` (router limen-wN).
  bin=${spec%%#*} workers=
  [ "$bin" = "$spec" ] || workers=${spec#*#}
  n=$((n + 1)); name=limen; [ $n -gt 1 ] && name=limen$n
  [ -z "$workers" ] || name=limen-w$workers
  routers+=(--router "$name=$port=env RUST_LOG=warn ${workers:+LIMEN_WORKERS=$workers} $ROOT/bench/peerbench-limen.sh $bin $guest {PORT} {ROUTES} {RUNDIR}")
  port=$((port + 1))
done
cd "$PB"
# Peers: PEERBENCH_PEERS overrides (nginx-hc is nginx with proxy_half_close
# on, limen's semantics: the peer to compare with).
peers=${PEERBENCH_PEERS:-direct,nginx,nginx-hc,haproxy,haproxy-splice}
./run.sh --routers "$peers" "${routers[@]}" --phases "${PEERBENCH_PHASES:-b,c,d}" "${extra[@]}"
