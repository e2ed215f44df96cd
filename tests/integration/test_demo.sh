#!/usr/bin/env bash
# `osconnect demo` outside the source tree: the HR sample is built into the binary, so
# the demo runs from any directory (and from an installed package). It imports 300 rows,
# runs a presence cycle, and removes its temporary directory. --data must be readable.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
has() { case "$2" in *"$3"*) ok ;; *) bad "$1: '$3' not in the output"; echo "$2" | tail -20 ;; esac; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
out=$("$OSC_BIN" demo --cycles 1 --interval 100ms 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "demo exited $rc"
has "import" "$out" "employees: 300 records read, 300 sent, 0 rejected"
has "commit" "$out" "OfficeSpace's live directory: 1 employee(s) before the import, 301 now."
has "presence" "$out" "== 5. what OfficeSpace received"
dir=$(printf '%s\n' "$out" | sed -n 's/^config  *\(\/tmp\/osconnect-demo-[A-Za-z0-9]*\)\/osconnect.yaml.*/\1/p')
[ -n "$dir" ] && ok || bad "no demo directory printed"
[ -n "$dir" ] && [ ! -e "$dir" ] && ok || bad "demo directory $dir left behind"
[ -z "$(ls -A "$tmp")" ] && ok || bad "demo wrote into the current directory: $(ls -A "$tmp")"

out=$("$OSC_BIN" demo --data "$tmp/missing.csv" 2>&1); rc=$?
[ $rc -eq 66 ] && ok || bad "--data missing file exited $rc, want 66"
has "missing --data" "$out" "cannot read $tmp/missing.csv"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
