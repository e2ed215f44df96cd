#!/usr/bin/env bash
# Delivery benchmark: N generated employee records (JSON Lines) sent by
# `osconnect send` (template upsert_employees, batches of 100, checkpoint on)
# to a loopback HTTP sink. Prints records/s, wall, CPU seconds (user+sys),
# peak RSS, the request count and what the sink saw: the most requests in
# flight at once, and its 200 and 429 answers.
#   bench/delivery.sh BIN [N]      (default N = 1000000; bench_gen/bench_sink next to BIN)
# Environment:
#   BENCH_RECORDS      N when not given as an argument
#   BENCH_DELAY_MS     the sink answers each request after this many ms (default 0: at once)
#   BENCH_LIMIT        the sink answers 429 beyond this many requests in flight (default: none)
#   BENCH_RETRY_AFTER  ...with this Retry-After in seconds (default: no header)
#   BENCH_IN_FLIGHT    max_in_flight in the config; unset: not written, the default is measured
set -euo pipefail
bin=$(realpath "$1")
n=${2:-${BENCH_RECORDS:-1000000}}
bindir=$(dirname "$bin")
gen=$bindir/bench_gen
sink=$bindir/bench_sink
for f in "$gen" "$sink"; do
  [ -x "$f" ] || { echo "delivery.sh: $f not built (cmake --build $bindir)"; exit 69; }
done
tmp=$(mktemp -d)
sink_pid=
cleanup() { [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

sink_args=()
[ -n "${BENCH_DELAY_MS:-}" ] && sink_args+=(--delay-ms "$BENCH_DELAY_MS")
[ -n "${BENCH_LIMIT:-}" ] && sink_args+=(--limit "$BENCH_LIMIT")
[ -n "${BENCH_RETRY_AFTER:-}" ] && sink_args+=(--retry-after "$BENCH_RETRY_AFTER")
in_flight_line=
[ -n "${BENCH_IN_FLIGHT:-}" ] && in_flight_line="    max_in_flight: $BENCH_IN_FLIGHT"

"$gen" "$n" "$tmp/employees.jsonl"
"$sink" "${sink_args[@]}" 1 >"$tmp/sink.out" &
sink_pid=$!
for _ in $(seq 100); do grep -q '^sink ' "$tmp/sink.out" 2>/dev/null && break; sleep 0.05; done
url=$(awk '/^sink /{print $2}' "$tmp/sink.out")
[ -n "$url" ] || { echo "delivery.sh: the sink did not start"; exit 69; }

cat >"$tmp/bench.yaml" <<YAML
officespace:
  base_url: $url
  api_key: bench-key-0123456789abcdef0123456789
destinations:
  employees:
    template: upsert_employees
    source_name: bench
    batch: {size: 100}
$in_flight_line
    dead_letter: $tmp/employees.dead.jsonl
YAML

size=$(stat -c %s "$tmp/employees.jsonl")
rc=0
/usr/bin/time -v -o "$tmp/time.txt" "$bin" send -q --json-summary -c "$tmp/bench.yaml" \
  -d employees "$tmp/employees.jsonl" >"$tmp/summary.json" || rc=$?
ours=$(jq -r '.max_in_flight // "?"' "$tmp/summary.json" 2>/dev/null || echo "?")
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=
awk -v n="$n" -v size="$size" -v delay="${BENCH_DELAY_MS:-0}" -v limit="${BENCH_LIMIT:-none}" \
    -v inflight="${BENCH_IN_FLIGHT:-default}" -v ours="$ours" \
    -v sink="$(grep '^requests' "$tmp/sink.out")" -v seen="$(grep '^max_in_flight' "$tmp/sink.out")" '
  /User time/ {u=$NF} /System time/ {s=$NF} /Maximum resident/ {rss=$NF}
  /Elapsed \(wall clock\)/ {split($NF,a,":"); w=(length(a)==3)?a[1]*3600+a[2]*60+a[3]:a[1]*60+a[2]}
  END {
    split(seen, f, " ")
    printf "records      %d (%.0f MB JSON Lines)\n", n, size/1e6
    printf "setup        sink delay %s ms, sink limit %s, max_in_flight %s\n", delay, limit, inflight
    printf "wall         %.2f s\n", w
    printf "records/s    %.0f\n", (w>0)?n/w:0
    printf "CPU          %.2f s (user %.2f + sys %.2f)\n", u+s, u, s
    printf "peak RSS     %.1f MiB\n", rss/1024
    printf "sink         %s\n", sink
    printf "in flight    %s at most (seen by the sink), %s at most (sent by osconnect); answers: %s x 200, %s x 429\n", f[2], ours, f[4], f[6]
  }' "$tmp/time.txt"
if [ "$rc" -ne 0 ]; then
  echo "delivery.sh: send exited $rc"
  exit 70
fi
