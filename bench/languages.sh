#!/bin/bash
# Start-up cost of each language's regex-services, as an operator sees it:
# `limen check` (read, compile or load from the cache, type-check, init one
# instance) in a fresh process, with an empty compile cache ("compiled") and
# with the cache filled by the run before ("cache"). Median of REPS runs.
# usage: bench/languages.sh LIMEN_BIN [REPS]   (after `cargo xtask guests`)
set -euo pipefail
LIMEN=$1 REPS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

run_ms() { # wall-clock ms of one `limen check`
  local t0 t1
  t0=$(date +%s%N)
  "$LIMEN" check --config "$1" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

printf '%-20s %10s %12s %12s\n' guest bytes compiled_ms cache_ms
for name in regex-services regex-services-c regex-services-py regex-services-js; do
  module=$ROOT/target/guests/$name.wasm
  cache=$WORK/cache-$name
  cfg=$WORK/$name.toml
  {
    printf '[[listeners]]\nname = "bench"\nbind = "127.0.0.1:0"\n'
    printf '[policy]\nmodule = "%s"\ncache = "%s"\nfuel = 20_000_000\ninstances = 1\n' "$module" "$cache"
    printf '[policy.config]\n'
    cat "$ROOT/examples-guests/regex-services/policy.toml"
    printf '[upstreams]\nallow = ["127.0.0.1/32"]\n'
  } > "$cfg"
  cold=() warm=()
  for _ in $(seq "$REPS"); do
    rm -rf "$cache"
    cold+=("$(run_ms "$cfg")")
    warm+=("$(run_ms "$cfg")")
  done
  printf '%-20s %10s %12s %12s\n' "$name" "$(stat -c %s "$module")" \
    "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${warm[@]}" | median)"
done
