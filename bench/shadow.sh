#!/bin/bash
# What a shadowed candidate costs live connections, in one peerbench run
# (phase b: router CPU per connection, rate, p50/p99): the same limen with
#   limen         no candidate
#   limen2        [policy.shadow] = the live policy again (static-routes, same
#                 config: every sample decided, all `same`)
#   limen3        [policy.shadow] = a slow candidate: regex-services in
#                 Python (componentize-py), the same routes as rules
# How many samples a shadow decided and dropped under this load: run the
# wrapper by hand with [metrics] and read limen_policy_shadow_total.
#
#   bench/shadow.sh [LIMEN_BIN] [-- run.sh options, e.g. --reps 2 --dur 5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIMEN=$ROOT/target/release/limen
if [ $# -gt 0 ] && [ "$1" != "--" ]; then LIMEN=$(realpath "$1"); shift; fi
[ "${1:-}" = "--" ] && shift
[ -x "$LIMEN" ] || (cd "$ROOT" && cargo build --release -q -p limen)
(cd "$ROOT" && cargo xtask guests >/dev/null)
GUESTS=$ROOT/target/guests
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A stand-in for the limen binary that adds a [policy.shadow] table to the
# config peerbench-limen.sh wrote, then runs the real one.
wrapper() { # NAME SHADOW_TOML
  cat > "$work/$1" <<EOF
#!/bin/bash
cfg=\$3
grep -q '^\[policy.shadow\]' "\$cfg" || printf '\n[policy.shadow]\n%s\n' '$2' >> "\$cfg"
exec "$LIMEN" "\$@"
EOF
  chmod +x "$work/$1"
}
# The kit's routes (peerbench-limen.sh's static-routes config) as the same
# candidate, and as regex rules for the Python candidate.
wrapper limen-same "module = \"$GUESTS/static-routes.wasm\""
rules='{ default = "127.0.0.1:9451", rules = [ { pattern = "^a\\.test$", upstream = "127.0.0.1:9451" }, { pattern = "^b\\.test$", upstream = "127.0.0.1:9452" }, { pattern = "^c\\.test$", upstream = "127.0.0.1:9453" } ] }'
wrapper limen-slow "module = \"$GUESTS/regex-services-py.wasm\"
config = $rules"

PEERBENCH_PEERS=${PEERBENCH_PEERS:-nginx-hc} PEERBENCH_PHASES=${PEERBENCH_PHASES:-b} \
  "$ROOT/bench/peerbench.sh" "$LIMEN" "$work/limen-same" "$work/limen-slow" -- "$@"
