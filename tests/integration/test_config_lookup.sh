#!/usr/bin/env bash
# Which config file a command uses: -c, else $OSCONNECT_CONFIG, else ./osconnect.yaml,
# else /etc/osconnect/osconnect.yaml (named in the error when nothing is found); and the
# real binary resolving a relative key file against the config's folder, and presence.state
# against $STATE_DIRECTORY (also for examples/presence.yaml).
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
has() { case "$2" in *"$3"*) ok ;; *) bad "$1: '$3' not in: $2" ;; esac; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cwd" "$tmp/conf"
cfg() { printf 'officespace:\n  hostname: %s\n  api_key: k-lookup-0123\n' "$1" >"$2"; }
cfg local "$tmp/cwd/osconnect.yaml"
cfg env "$tmp/env.yaml"
cfg flag "$tmp/flag.yaml"
cd "$tmp/cwd" || exit 1
unset OSCONNECT_CONFIG STATE_DIRECTORY

used() { "$OSC_BIN" check --offline --print-config "$@" 2>&1 | sed -n 's/^  hostname: "\(.*\)"$/\1/p'; }
[ "$(used)" = local ] && ok || bad "./osconnect.yaml not used: '$(used)'"
[ "$(OSCONNECT_CONFIG=$tmp/env.yaml used)" = env ] && ok || bad "\$OSCONNECT_CONFIG does not win over ./osconnect.yaml"
[ "$(OSCONNECT_CONFIG=$tmp/env.yaml used -c "$tmp/flag.yaml")" = flag ] && ok || bad "-c does not win"
[ "$(OSCONNECT_CONFIG= used)" = local ] && ok || bad "an empty \$OSCONNECT_CONFIG is not ignored"

# nothing local: the system file is next (named in the error when it does not exist)
cd "$tmp" || exit 1
out=$("$OSC_BIN" check --offline 2>&1); rc=$?
if [ -e /etc/osconnect/osconnect.yaml ]; then
  has "system config" "$out" /etc/osconnect/osconnect.yaml
else
  [ $rc -eq 66 ] && ok || bad "no config anywhere exited $rc, want 66"
  has "no config" "$out" "create ./osconnect.yaml or /etc/osconnect/osconnect.yaml"
fi

# a key file next to the config, used from another directory
printf 'k-lookup-file-0123\n' >"$tmp/conf/os.key"
chmod 600 "$tmp/conf/os.key"
printf 'officespace:\n  hostname: acme\n  api_key_file: os.key\nmapped:\n  token: t-lookup-0123\npresence:\n  buildings: [B1]\n  state: presence.db\n' >"$tmp/conf/c.yaml"
out=$("$OSC_BIN" check --offline --print-config -c conf/c.yaml 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "relative key file: exit $rc: $out"
has "key file" "$out" 'api_key_file: "conf/os.key"'
has "state" "$out" 'state: "conf/presence.db"'
out=$(STATE_DIRECTORY=/var/lib/osconnect "$OSC_BIN" check --offline --print-config -c "$tmp/conf/c.yaml" 2>&1)
has "state under systemd" "$out" 'state: "/var/lib/osconnect/presence.db"'
has "key file under systemd" "$out" "api_key_file: \"$tmp/conf/os.key\""

# examples/presence.yaml: its state file is next to it, or in the service's state directory
ex=$OSC_SRC/examples/presence.yaml
export OFFICESPACE_API_KEY=k-lookup-0123 MAPPED_API_TOKEN=t-lookup-0123
out=$("$OSC_BIN" check --offline --print-config -c "$ex" 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "examples/presence.yaml: exit $rc: $out"
has "example state" "$out" "state: \"$OSC_SRC/examples/presence.db\""
out=$(STATE_DIRECTORY=/var/lib/osconnect "$OSC_BIN" check --offline --print-config -c "$ex" 2>&1)
has "example state under systemd" "$out" 'state: "/var/lib/osconnect/presence.db"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
