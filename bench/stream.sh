#!/usr/bin/env bash
# Continuous-delivery benchmark.
#   1. JetStream: N generated employee records (default 1,000,000), one message each, are
#      published once into a stream of a local `nats-server -js`; then 1, 2 and 3
#      `osconnect run` instances with the same config (template upsert_employees, batches of
#      100, a nats source) drain it into the instant bench_sink, each run on a new durable
#      consumer (so each reads all N). Prints per run: wall time until every record was
#      accepted, records/s, and per instance CPU seconds (user+sys) and peak RSS.
#   2. HTTP ingest: one instance with an http source; bench_ingest POSTs bodies of 1 record
#      and of 100 records over 4 connections; prints bodies/s and records/s of the 202s
#      (each 202 waits for an fsync of the queue), and the time until the sink had them all.
#   bench/stream.sh BIN [N]      (bench_gen, bench_sink, bench_natspub, bench_ingest next to BIN)
# Environment: BENCH_RECORDS (N), BENCH_INSTANCES ("1 2 3"), BENCH_INGEST_BODIES (5000).
set -euo pipefail
bin=$(realpath "$1")
n=${2:-${BENCH_RECORDS:-1000000}}
bindir=$(dirname "$bin")
for f in bench_gen bench_sink bench_natspub bench_ingest; do
  [ -x "$bindir/$f" ] || { echo "stream.sh: $bindir/$f not built (cmake --build $bindir)"; exit 69; }
done
command -v nats-server >/dev/null || { echo "stream.sh: nats-server is not installed (make deps)"; exit 69; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_line() { # FILE PATTERN: print the first line matching, waiting up to 20 s
  for _ in $(seq 400); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.05
  done
  echo "stream.sh: no '$2' in $1" >&2; cat "$1" >&2; return 1
}

cpu_s() { # PID: user+sys CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"
}
rss_mib() { # PID: peak RSS in MiB
  awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"
}
accepted() { # STATUS_URL...: sum of the sources' accepted records
  local sum=0 v
  for u in "$@"; do
    v=$(curl -s "$u/metrics" | awk -F'} ' '/osconnect_source_records_total.*result="accepted"/ {s+=$2} END {print s+0}')
    sum=$((sum + v))
  done
  echo "$sum"
}

# ---- nats-server, the sink, the records -------------------------------------------------
mkdir -p "$tmp/nats"
nats-server -js -a 127.0.0.1 -p -1 -m -1 -sd "$tmp/nats" --ports_file_dir "$tmp/nats" \
  >"$tmp/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do ls "$tmp"/nats/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
nats_url=$(grep -o 'nats://[^"]*' "$tmp"/nats/*.ports | head -1)
[ -n "$nats_url" ] || { echo "stream.sh: nats-server did not start"; cat "$tmp/nats.log"; exit 69; }
"$bindir/bench_sink" 2 >"$tmp/sink.out" &
sink_pid=$!
pids+=($sink_pid)
sink_url=$(wait_line "$tmp/sink.out" '^sink ' | awk '{print $2}')
"$bindir/bench_gen" "$n" "$tmp/employees.jsonl"
echo "records      $n (one message each, $(($(stat -c %s "$tmp/employees.jsonl") / n)) bytes a record)"
echo "publish      $("$bindir/bench_natspub" "$nats_url" BENCH bench.employees "$tmp/employees.jsonl" 2>/dev/null)"

config() { # NAME SOURCE_LINES: write $tmp/NAME.yaml
  cat >"$tmp/$1.yaml" <<YAML
officespace:
  base_url: $sink_url
  api_key: bench-key-0123456789abcdef0123456789
status: {listen: 127.0.0.1:0}
destinations:
  employees:
    template: upsert_employees
    source_name: bench
    batch: {size: 100}
    flush_interval: 200ms
    dead_letter: $tmp/$1.dead.jsonl
$2
YAML
}

# ---- 1, 2, 3 instances on one durable each ------------------------------------------------
for k in ${BENCH_INSTANCES:-1 2 3}; do
  config "nats$k" "    source:
      type: nats
      url: $nats_url
      stream: BENCH
      subject: bench.employees
      durable: bench_$k
      max_ack_pending: 20000"
  urls=() ipids=()
  start=$(date +%s.%N)
  for i in $(seq "$k"); do
    mkdir -p "$tmp/state$k-$i"
    STATE_DIRECTORY="$tmp/state$k-$i" "$bin" run -q -c "$tmp/nats$k.yaml" \
      >"$tmp/run$k-$i.out" 2>"$tmp/run$k-$i.err" &
    ipids+=($!)
    pids+=($!)
  done
  for i in $(seq "$k"); do
    urls+=("$(wait_line "$tmp/run$k-$i.out" '^status ' | awk '{print $2}')")
  done
  while [ "$(accepted "${urls[@]}")" -lt "$n" ]; do sleep 0.1; done
  end=$(date +%s.%N)
  cpu=() rss=()
  for p in "${ipids[@]}"; do cpu+=("$(cpu_s "$p")"); rss+=("$(rss_mib "$p")"); done
  for p in "${ipids[@]}"; do kill "$p"; wait "$p" || true; done
  awk -v n="$n" -v k="$k" -v s="$start" -v e="$end" -v cpu="${cpu[*]}" -v rss="${rss[*]}" 'BEGIN {
    w = e - s
    printf "nats x%d      %.2f s, %.0f records/s; CPU s per instance: %s; peak RSS MiB: %s\n",
           k, w, n / w, cpu, rss }'
done

# ---- HTTP ingest -------------------------------------------------------------------------
bodies=${BENCH_INGEST_BODIES:-5000}
config ingest "    source: {type: http, ingest_token: bench-ingest-token-0123456789}"
mkdir -p "$tmp/ingest-state"
STATE_DIRECTORY="$tmp/ingest-state" "$bin" run -q -c "$tmp/ingest.yaml" >"$tmp/ingest.out" \
  2>"$tmp/ingest.err" &
ipid=$!
pids+=($ipid)
url=$(wait_line "$tmp/ingest.out" '^status ' | awk '{print $2}')
total=0
for per in 1 100; do
  count=$bodies
  [ "$per" -gt 1 ] && count=$((bodies / 5))
  start=$(date +%s.%N)
  echo "ingest x$per  $("$bindir/bench_ingest" "$url/ingest/employees" bench-ingest-token-0123456789 \
    "$count" "$per" 4)"
  total=$((total + count * per))
  while [ "$(accepted "$url")" -lt "$total" ]; do sleep 0.05; done
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v r=$((count * per)) \
    'BEGIN { printf "             all %d delivered to the sink %.2f s after the first POST\n", r, e - s }'
done
echo "ingest run   CPU $(cpu_s "$ipid") s, peak RSS $(rss_mib "$ipid") MiB"
kill "$ipid"; wait "$ipid" || true
