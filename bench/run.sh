#!/usr/bin/env bash
# make bench: run every benchmark and print its figures. Usage: bench/run.sh BIN
set -euo pipefail
bin=$(realpath "$1")
here=$(dirname "$0")
echo "osconnect benchmarks on $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
for b in delivery presence; do
  if [ -x "$here/$b.sh" ]; then
    echo; echo "== $b"
    "$here/$b.sh" "$bin"
  fi
done
