#!/usr/bin/env bash
# The simulator as a user drives it from a shell: the two URL lines on stdout, curl
# command lines against both APIs (the queries quoted in mapped.md §3, the REST import,
# a presence mutation), the /_sim endpoints, a scripted fault, and a clean SIGTERM.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', want '$3'"; fi; }

out=$(mktemp)
"$OSC_BIN" sim --mapped-port 0 --officespace-port 0 >"$out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$out")" -ge 2 ] && break; sleep 0.05; done
M=$(sed -n 's/^mapped //p' "$out")
O=$(sed -n 's/^officespace //p' "$out")
check "line count" "$(wc -l <"$out")" 2
[[ $M =~ ^http://127\.0\.0\.1:[0-9]+/graphql$ ]] && ok || bad "mapped line '$M'"
[[ $O =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && ok || bad "officespace line '$O'"

TOK='Authorization: token sim-mapped-token-0123456789abcdef'
KEY=sim-officespace-key-0123456789abcdef
mq() { curl -s -X POST "$M" -H "$TOK" -H 'Content-Type: application/json' --data "$1"; }

check "sites" "$(mq '{"query":"{ sites { name id } }"}' | jq -c '.data.sites[0]')" \
  '{"name":"Demo Campus","id":"SITEdemoCampus"}'
check "buildings" "$(mq '{"query":"query { buildings { id name } }"}' | jq -r '[.data.buildings[].id] | join(",")')" \
  'BLDGdemoAlpha,BLDGdemoBeta'
check "points of a building" \
  "$(mq '{"query":"{ buildings(filter: {id: {eq: \"BLDGdemoAlpha\"}}) { name id points { id name exactType } } }"}' | jq '.data.buildings[0].points | length')" 0
check "floor by id" \
  "$(mq '{"query":"{ floors(filter: { id: { eq: \"FLRdemoA1\"} }) { id level things { id name } } }"}' | jq -c '.data.floors[0]')" \
  '{"id":"FLRdemoA1","level":1,"things":[{"id":"THGdemoA1counter","name":"People counter"}]}'
check "unclassified filtered out" \
  "$(mq '{"query":"{ things(filter: { id: { eq: \"THGdemoA1counter\" } }) { points(filter: { exactType: { ne: \"Point\"} }) { id exactType } } }"}' | jq -r '.data.things[0].points[0].exactType')" \
  Occupancy_Count_Sensor
check "401" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M" --data '{"query":"{ sites { id } }"}')" 401

# REST: the three-step import, as OfficeSpace's own scripts do it
R=(-H "Authorization: Token token=$KEY")
check "clear" "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "${R[@]}" "$O/api/1/employee_directory/AzureAD")" 200
check "batch" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${R[@]}" -H 'Content-Type: application/json; charset=utf-8' \
  --data '[{"EmployeeId":"alice@example.com","Source":"AzureAD","FirstName":"Alice","LastName":"Smith"}]' \
  "$O/api/1/employee_batch_imports")" 200
check "trigger" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${R[@]}" --data 'Source=AzureAD' "$O/api/1/employee_directory")" 200
check "employee" "$(curl -s "${R[@]}" "$O/api/1/employees?client_employee_id=alice@example.com" | jq -r '.response[0].first_name')" Alice
check "quoted key" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token token=\"$KEY\"" "$O/api/1/seats?floor_id=101")" 200

# GraphQL presence, the reference's example request
check "presence" "$(curl -s -X POST "$O/graphql" -H "apikey: $KEY" -H 'Content-Type: application/json' \
  --data '{"query":"mutation P($p: EmployeePresencesCreateInput!) { createEmployeePresence(employeePresence: $p) { success errors { attribute errors label } } }","variables":{"p":{"roomId":"1011","occupancyStatus":"PRESENCE","occupancyCount":3,"presenceDetectedAt":"2026-01-07T10:30:00Z"}}}' \
  | jq -c '.data.createEmployeePresence')" '{"success":true,"errors":null}'
check "/_sim/presence" "$(curl -s "$O/_sim/presence" | jq -c '.locations[0] | [.type, .id, .occupancyStatus, .occupancyCount]')" \
  '["room","1011","PRESENCE",3]'
check "/_sim/employees" "$(curl -s "$O/_sim/employees" | jq '.live_count')" 2
curl -s "$O/_sim/requests" | grep -q "$KEY" && bad "key in the request log" || ok

# a scripted fault, then normal service
check "faults" "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '503x1:retry-after=7' "$O/_sim/faults")" 200
check "503" "$(curl -s -D - -o /dev/null "${R[@]}" "$O/api/1/sites" | tr -d '\r' | grep -i '^retry-after' )" "Retry-After: 7"
check "after" "$(curl -s -o /dev/null -w '%{http_code}' "${R[@]}" "$O/api/1/sites")" 200

# a request delayed across a reset belongs to the old state: refused, not applied
curl -s -o /dev/null -X POST --data 'delay=1s:path=/api/1/employee_batch_imports' "$O/_sim/faults"
code=$(mktemp)
curl -s -o /dev/null -w '%{http_code}' -X POST "${R[@]}" -H 'Content-Type: application/json' \
  --data '[{"EmployeeId":"late@example.com","Source":"Late"}]' "$O/api/1/employee_batch_imports" >"$code" &
cpid=$!
for _ in $(seq 100); do
  [ "$(curl -s "$O/_sim/requests?path=/api/1/employee_batch_imports" | jq '.count')" -ge 2 ] && break
  sleep 0.02
done
check "reset" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$O/_sim/reset")" 200
wait $cpid
check "delayed across a reset" "$(cat "$code")" 503
check "not staged" "$(curl -s "$O/_sim/employees?summary=1" | jq '.staged_total')" 0
rm -f "$code"

kill -TERM $pid
wait $pid
check "exit status" $? 0
rm -f "$out"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
