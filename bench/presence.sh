#!/usr/bin/env bash
# bench/presence.sh BIN [BUILDINGS] [CYCLES]
#
# Presence cycles over a generated scenario: BUILDINGS (default 10) x 20
# floors x 50 locations (the floor, 40 rooms/desks, 9 neighborhoods) = 10,000
# locations, 5 occupancy points each (all five types, int64/float64/bool
# values) = 50,000 points. `osconnect run` syncs it every 3 s: the first
# cycle discovers and pushes everything; before each of the next CYCLES
# (default 5) 1 % of the point values are changed through POST /_sim/points.
# Prints CPU seconds and wall time of the first and the steady cycles,
# requests and pushes per cycle, and the peak RSS of osconnect. Needs only
# bash, awk, curl and /proc.
set -euo pipefail
bin=$(realpath "$1")
nb=${2:-10}
cycles=${3:-5}
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
sim_pid=
run_pid=
cleanup() {
  [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds or fail
wait_for() {
  local deadline=$(($(date +%s) + $1)); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bench/presence: timed out waiting for: $*" >&2; exit 1; }
    sleep 0.05
  done
}

# the scenario: fixed values, so only the scripted 1 % changes
awk -v nb="$nb" 'BEGIN {
  split("Occupancy_Status Temporary_Occupancy_Status Occupancy_Count_Sensor Occupancy_Sensor PIR_Sensor", kind, " ")
  split("float64 int64 int64 bool float64", vt, " ")
  printf "{\"sites\":[{\"id\":\"SITEbench\",\"name\":\"Bench\",\"buildings\":["
  pt = 0; loc = 0
  for (b = 0; b < nb; b++) {
    printf "%s{\"id\":\"BLDGbench%d\",\"name\":\"Building %d\",\"floors\":[", b ? "," : "", b, b
    for (f = 0; f < 20; f++) {
      printf "%s{\"id\":\"FLRb%d_%d\",\"name\":\"Floor %d\",\"level\":%d,\"identities\":[\"urn:officespace:floor:id:%d\"],", f ? "," : "", b, f, f + 1, f + 1, ++loc
      points(); printf ",\"spaces\":["
      for (s = 0; s < 40; s++) {
        type = s % 4 == 0 ? "desk" : "room"
        printf "%s{\"id\":\"SPCb%d_%d_%d\",\"name\":\"%s %d\",\"identities\":[\"urn:officespace:%s:id:%d\"],", s ? "," : "", b, f, s, type, s, type, ++loc
        points(); printf "}"
      }
      printf "],\"zones\":["
      for (z = 0; z < 9; z++) {
        printf "%s{\"id\":\"ZONb%d_%d_%d\",\"name\":\"Zone %d\",\"identities\":[\"urn:officespace:neighborhood:id:%d\"],", z ? "," : "", b, f, z, z, ++loc
        points(); printf "}"
      }
      printf "]}"
    }
    printf "]}"
  }
  printf "]}]}\n"
}
function points(   k, v) {
  printf "\"points\":["
  for (k = 1; k <= 5; k++) {
    v = (pt % 3 == 0) ? 1 : 0
    if (vt[k] == "bool") v = v ? "true" : "false"
    printf "%s{\"id\":\"PNT%d\",\"exactType\":\"%s\",\"valueType\":\"%s\",\"value\":%s}", (k > 1 ? "," : ""), pt, kind[k], vt[k], v
    pt++
  }
  printf "]"
}' >"$work/scenario.json"
npts=$((nb * 1000 * 5))

"$bin" sim --mapped-port 0 --officespace-port 0 --scenario "$work/scenario.json" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
wait_for 60 grep -q '^officespace ' "$work/sim.out"
mapped=$(awk '/^mapped /{print $2}' "$work/sim.out")
os=$(awk '/^officespace /{print $2}' "$work/sim.out")
buildings=$(seq -s, -f 'BLDGbench%.0f' 0 $((nb - 1)))

# change_values N: flip 1 % of the points (a different 1 % for each N), one curl for all
change_values() {
  awk -v n="$1" -v np="$npts" -v url="$os/_sim/points" 'BEGIN {
    for (i = n * 7 % 100; i < np; i += 100) {
      v = (i % 3 == 0) ? 0 : 1
      if (i % 5 == 3) v = v ? "true" : "false"
      printf "%surl = \"%s\"\noutput = \"/dev/null\"\ndata = \"{\\\"id\\\":\\\"PNT%d\\\",\\\"value\\\":%s}\"\n", (i >= 100 ? "next\n" : ""), url, i, v
    }
  }' >"$work/changes.curl"
  curl -fsS -K "$work/changes.curl"
}

cat >"$work/bench.yaml" <<EOF
officespace:
  base_url: $os
  api_key: sim-officespace-key-0123456789abcdef
  graphql_url: $os/graphql
mapped:
  url: $mapped
  token: sim-mapped-token-0123456789abcdef
status:
  listen: 127.0.0.1:0
presence:
  buildings: [$buildings]
  interval: 3s
  resend_after: 1h
  state: $work/state.db
EOF

"$bin" run -c "$work/bench.yaml" -q >"$work/run.out" 2>"$work/run.err" &
run_pid=$!
wait_for 30 grep -q '^status http://' "$work/run.out"
status=$(awk '/^status /{print $2}' "$work/run.out")

# metric NAME: the value of one sample line of /metrics
metric() { curl -fsS "$status/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
cycles_done() { curl -fsS "$status/metrics" | awk '/^osconnect_presence_cycles_total\{/ {s += $2} END {print s + 0}'; }
cpu_s() { awk -v t="$tick" '{printf "%.3f", ($14 + $15) / t}' "/proc/$run_pid/stat"; }
have_cycles() { [ "$(cycles_done)" -ge "$1" ]; }

wait_for 120 have_cycles 1
cpu1=$(cpu_s); dur1=$(metric osconnect_presence_last_cycle_duration_seconds)
push1=$(metric 'osconnect_presence_push_requests_total')
acc1=$(metric 'osconnect_presence_pushes_total{result="accepted"}')
map1=$(metric osconnect_presence_mapped_requests_total)
locs=$(metric osconnect_presence_locations_discovered)
pts=$(metric osconnect_presence_points)

for n in $(seq 1 "$cycles"); do
  change_values "$n"
  wait_for 120 have_cycles $((n + 1))
done
cpu2=$(cpu_s)
sum=$(metric osconnect_presence_cycle_duration_seconds_sum)
push2=$(metric 'osconnect_presence_push_requests_total')
acc2=$(metric 'osconnect_presence_pushes_total{result="accepted"}')
map2=$(metric osconnect_presence_mapped_requests_total)
ok=$(metric 'osconnect_presence_cycles_total{result="ok"}')
rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$run_pid/status")
kill -TERM "$run_pid"; wait "$run_pid"; run_pid=

awk -v l="$locs" -v p="$pts" -v c="$cycles" -v np="$npts" -v ok="$ok" -v cpu1="$cpu1" -v cpu2="$cpu2" \
    -v d1="$dur1" -v sum="$sum" -v p1="$push1" -v p2="$push2" -v a1="$acc1" -v a2="$acc2" \
    -v m1="$map1" -v m2="$map2" -v rss="$rss" 'BEGIN {
  printf "presence: %d locations, %d occupancy points, %d cycles (%d ok)\n", l, p, c + 1, ok
  printf "  first cycle (discover + push all): %.3f CPU-s, %.3f s wall, %d Mapped + %d OfficeSpace requests, %d pushed\n", cpu1, d1, m1, p1, a1
  printf "  steady cycle (%d values = 1 %% changed): %.3f CPU-s, %.3f s wall, %.1f Mapped + %.1f OfficeSpace requests, %.1f locations pushed\n", np / 100, (cpu2 - cpu1) / c, (sum - d1) / c, (m2 - m1) / c, (p2 - p1) / c, (a2 - a1) / c
  printf "  peak RSS: %.1f MiB\n", rss
}'
