#!/usr/bin/env bash
# make bench: run every benchmark and print its figures. Usage: bench/run.sh BIN
# Delivery runs three cases against bench_sink, each with BENCH_RECORDS records
# (default 1,000,000) and the config's default max_in_flight unless BENCH_IN_FLIGHT is set:
#   instant      the sink answers at once
#   20ms         the sink answers each request after 20 ms (a latency-bound server)
#   20ms-limit8  the same, and 429 beyond 8 requests in flight (no Retry-After)
# Continuous delivery (stream.sh): BENCH_RECORDS through JetStream with 1, 2 and 3
# `osconnect run` instances, and HTTP ingest throughput.
set -euo pipefail
bin=$(realpath "$1")
here=$(dirname "$0")
echo "osconnect benchmarks on $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
if [ -x "$here/delivery.sh" ]; then
  echo; echo "== delivery: instant sink"
  BENCH_DELAY_MS= BENCH_LIMIT= "$here/delivery.sh" "$bin"
  echo; echo "== delivery: sink answering after 20 ms"
  BENCH_DELAY_MS=20 BENCH_LIMIT= "$here/delivery.sh" "$bin"
  echo; echo "== delivery: sink answering after 20 ms, 429 beyond 8 in flight"
  BENCH_DELAY_MS=20 BENCH_LIMIT=8 "$here/delivery.sh" "$bin"
fi
if [ -x "$here/stream.sh" ]; then
  echo; echo "== continuous delivery: JetStream with 1, 2 and 3 instances, HTTP ingest"
  "$here/stream.sh" "$bin"
fi
if [ -x "$here/presence.sh" ]; then
  echo; echo "== presence"
  "$here/presence.sh" "$bin"
fi
