#!/usr/bin/env bash
# Fail if any credential used by the test suite appears in the suite's output.
# Usage: check-secrets.sh LOGFILE   (ctest's Testing/Temporary/LastTest.log)
# Tests add the keys they use to tests/fixtures/test-secrets.txt.
set -euo pipefail
log=$1
list=$(dirname "$0")/../tests/fixtures/test-secrets.txt
[ -f "$log" ] || { echo "check-secrets: no test log at $log" >&2; exit 1; }
if grep -n -F -f "$list" "$log" >/tmp/osc-secret-hits.$$ 2>/dev/null; then
  echo "check-secrets: credentials appear in the test output:" >&2
  cut -c1-200 /tmp/osc-secret-hits.$$ >&2
  rm -f /tmp/osc-secret-hits.$$
  exit 1
fi
rm -f /tmp/osc-secret-hits.$$
echo "check-secrets: no credential in $(wc -l <"$log") lines of test output"
