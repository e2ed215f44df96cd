#!/usr/bin/env bash
# make demo: run the connector against the embedded simulator. Usage: demo.sh BIN
set -euo pipefail
exec "$1" demo
