#!/usr/bin/env bash
# Delivery benchmark: N generated employee records (JSON Lines) sent by
# `osconnect send` (template upsert_employees, batches of 100, checkpoint on)
# to an instant loopback HTTP sink. Prints records/s, CPU seconds (user+sys),
# peak RSS and the request count.
#   bench/delivery.sh BIN [N]      (default N = 1000000; bench_gen/bench_sink next to BIN;
#                                   BENCH_IN_FLIGHT sets max_in_flight, default 4)
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

"$gen" "$n" "$tmp/employees.jsonl"
"$sink" 1 >"$tmp/sink.out" &
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
    max_in_flight: ${BENCH_IN_FLIGHT:-4}
    dead_letter: $tmp/employees.dead.jsonl
YAML

size=$(stat -c %s "$tmp/employees.jsonl")
/usr/bin/time -v -o "$tmp/time.txt" "$bin" send -q -c "$tmp/bench.yaml" -d employees \
  "$tmp/employees.jsonl" || { echo "delivery.sh: send failed"; cat "$tmp/time.txt"; exit 70; }
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=
awk -v n="$n" -v size="$size" -v sink="$(grep '^requests' "$tmp/sink.out")" '
  /User time/ {u=$NF} /System time/ {s=$NF} /Maximum resident/ {rss=$NF}
  /Elapsed \(wall clock\)/ {split($NF,a,":"); w=(length(a)==3)?a[1]*3600+a[2]*60+a[3]:a[1]*60+a[2]}
  END {
    printf "records      %d (%.0f MB JSON Lines)\n", n, size/1e6
    printf "wall         %.2f s\n", w
    printf "records/s    %.0f\n", (w>0)?n/w:0
    printf "CPU          %.2f s (user %.2f + sys %.2f)\n", u+s, u, s
    printf "peak RSS     %.1f MiB\n", rss/1024
    printf "sink         %s\n", sink
  }' "$tmp/time.txt"
