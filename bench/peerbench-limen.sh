#!/bin/bash
# limen as a peerbench router (shared/peerbench, run.sh's --router contract).
# usage: peerbench-limen.sh LIMEN_BIN GUEST_WASM PORT ROUTES_FILE RUNDIR [observe]
#   e.g. --router 'limen=8445=/path/peerbench-limen.sh /path/limen /path/static-routes.wasm {PORT} {ROUTES} {RUNDIR}'
# `observe` adds the /metrics endpoint and a text access log to RUNDIR/access.log
# (the metrics themselves are always kept).
# LIMEN_POLICY_EXTRA (environment): extra lines for the [policy] table, e.g. "instances = 1".
# LIMEN_WORKERS (environment): `workers = N` (default: limen's, the CPUs it may run on).
# LIMEN_CONFIG_EXTRA (environment): more tables, appended (bench/upgrade.sh: [admin]).
# LIMEN_POOL_MEMBERS (environment, N >= 2): each upstream 127.0.0.1:P becomes a pool of
#   N members, P, P+100, ... (bench/pools.sh starts the extra backends; phase b only).
# Turns the kit's routes file (`NAME host:port` lines: exact, `*.suffix`, `~regex`, `default`)
# into RUNDIR/limen.toml for the static-routes guest (or, for a guest file named
# regex-services*.wasm, in any language, the same routes as anchored regex rules), checks
# it, then execs limen in the foreground so that run.sh measures limen's own PID.
set -euo pipefail
LIMEN=$1 GUEST=$2 PORT=$3 ROUTES=$4 RUNDIR=$5 OBSERVE=${6:-}
mkdir -p "$RUNDIR"
CFG=$RUNDIR/limen.toml

default="" routes="" pools=""
while read -r name upstream _; do
  case $name in ''|'#'*) continue;; esac
  # Literal strings ('...') keep regex backslashes as written; they cannot hold a quote.
  [[ $name != *"'"* ]] || { echo "peerbench-limen: quote in pattern: $name" >&2; exit 2; }
  # The kit's `*.wild.test` means what nginx and HAProxy do with it, any depth
  # (haproxy.sh turns it into `map_end .wild.test`); limen's `*.` matches one
  # label, as certificates do, and `.wild.test` is its any-depth form.
  [[ $name == '*.'* ]] && name=${name#\*}
  if [ -n "${LIMEN_POOL_MEMBERS:-}" ]; then
    port=${upstream##*:} pool=p$port members=""
    for ((i = 0; i < LIMEN_POOL_MEMBERS; i++)); do members+="\"127.0.0.1:$((port + 100 * i))\", "; done
    [[ $pools == *"pools.$pool]"* ]] || pools+="[upstreams.pools.$pool]"$'\n'"members = [${members%, }]"$'\n'
    upstream=$pool
  fi
  if [ "$name" = default ]; then default=$upstream
  elif [[ $(basename "$GUEST") == regex-services* ]]; then
    case $name in
      '~'*) pattern=${name#\~} ;;
      .*) pattern=".*${name//./\\.}\$" ;;         # any depth, as above
      *) pattern="^${name//./\\.}\$" ;;
    esac
    routes+="  { pattern = '$pattern', upstream = \"$upstream\" },"$'\n'
  else routes+="  { match = '$name', upstream = \"$upstream\" },"$'\n'; fi
done < "$ROUTES"
# limen's default fuel (10 M) fits every language's regex-services.
if [[ $(basename "$GUEST") == regex-services* ]]; then key=rules; else key=routes; fi

cat > "$CFG" <<CONF
${LIMEN_WORKERS:+workers = $LIMEN_WORKERS}
[[listeners]]
name = "bench"
bind = "127.0.0.1:$PORT"

[policy]
module = "$GUEST"
${LIMEN_POLICY_EXTRA:-}

[policy.config]
default = "$default"
$key = [
$routes]

[limits]
max_connections = 20000   # above the kit's concurrency and its 1000-connection hold phase

[upstreams]
allow = ["127.0.0.1/32"]

$pools
${LIMEN_CONFIG_EXTRA:-}
CONF

if [ "$OBSERVE" = observe ]; then
  cat >> "$CFG" <<CONF

[metrics]
bind = "127.0.0.1:0"

[access_log]
path = "$RUNDIR/access.log"
CONF
fi

"$LIMEN" check --config "$CFG"
# The default level (info) logs nothing per routed connection: that is the access log's job.
exec "$LIMEN" run --config "$CFG"
