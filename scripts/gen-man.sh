#!/usr/bin/env bash
# Generate docs/osconnect.1 from docs/osconnect.1.in and the config table
# (`osconnect help config --man`), so the man page cannot drift from the code.
# Usage: gen-man.sh BIN OUT
set -euo pipefail
bin=$1 out=$2
src=$(dirname "$0")/../docs/osconnect.1.in
tmp=$(mktemp)
"$bin" help config --man >"$tmp"
awk -v gen="$tmp" '/^\.\\" @CONFIG@$/ { while ((getline l < gen) > 0) print l; next } { print }' "$src" >"$out"
rm -f "$tmp"
