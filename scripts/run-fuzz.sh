#!/usr/bin/env bash
# Run every fuzz_* harness in DIR for SECONDS each, from tests/fuzz/corpus/NAME.
# Crashes land in tests/fuzz/out/; each one becomes a fixture and a regression test.
set -euo pipefail
dir=$1 secs=$2
root=$(dirname "$0")/..
mkdir -p "$root/tests/fuzz/out"
status=0
for h in "$dir"/fuzz_*; do
  [ -x "$h" ] || continue
  name=$(basename "$h"); name=${name#fuzz_}
  corpus="$root/tests/fuzz/corpus/$name"; mkdir -p "$corpus"
  work=$(mktemp -d)
  echo "== fuzz $name (${secs}s)"
  if ! "$h" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$root/tests/fuzz/out/$name-" \
        -print_final_stats=1 "$work" "$corpus" 2>"$work/log"; then
    status=1; echo "CRASH in $name:"; tail -30 "$work/log"
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work/log" | sed "s/^/  $name /"
  rm -rf "$work"
done
exit $status
