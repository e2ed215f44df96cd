#!/usr/bin/env bash
# Install the Debian packages osconnect needs, only those that are missing.
# Called by `make demo` and `make test` (and, with extra packages, by fuzz and test-valgrind), so each is one command on a fresh machine.
set -euo pipefail

# libsystemd (sd_notify), libnats + nats-server (JetStream sources), prometheus (promtool
# validates /metrics in a test), openssl (test certificates)
pkgs=(build-essential cmake pkg-config curl jq python3
      libcurl4-openssl-dev libjansson-dev libyaml-dev libsqlite3-dev
      libmicrohttpd-dev libcmocka-dev liblua5.4-dev libsystemd-dev libnats-dev
      nats-server prometheus openssl "$@")  # "$@": extra packages of a target
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
