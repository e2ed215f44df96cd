#!/usr/bin/env bash
# The committed man page must match the config table (run `make man` after adding a key),
# and every subcommand must answer --help with exit 0.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

tmp=$(mktemp)
"$OSC_SRC/scripts/gen-man.sh" "$OSC_BIN" "$tmp"
if diff -u "$OSC_SRC/docs/osconnect.1" "$tmp" >/dev/null; then ok; else
  bad "docs/osconnect.1 is stale: run make man"; diff -u "$OSC_SRC/docs/osconnect.1" "$tmp" | head -20
fi
rm -f "$tmp"
grep -q 'presence.mutations_per_request' "$OSC_SRC/docs/osconnect.1" && ok || bad "man page lacks config keys"

for c in check send preview test presence run sim demo help; do
  out=$("$OSC_BIN" "$c" --help 2>&1); rc=$?
  [ $rc -eq 0 ] && ok || bad "$c --help exited $rc"
  case "$out" in *Usage:*) ok ;; *) bad "$c --help prints no usage" ;; esac
done
"$OSC_BIN" nosuchcommand >/dev/null 2>&1; rc=$?
[ $rc -eq 64 ] && ok || bad "unknown command exited $rc, want 64"
"$OSC_BIN" --version | grep -q '^osconnect ' && ok || bad "--version"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
