#!/usr/bin/env bash
# The systemd units in packaging/systemd/: `systemd-analyze verify` accepts them (copies whose
# ExecStart runs the binary under test, since verify wants an executable and needs no running
# systemd), with no warning at all (an unknown or misspelt key is only a warning), and they say
# what the README promises: Type=notify with a watchdog, the osconnect user, the state and
# configuration directories, the hardening (rated at most 2.0 by `systemd-analyze security`),
# and a daily persistent timer per destination.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$OSC_SRC"/packaging/systemd/*; do
  sed "s|@OSC_BINDIR@/osconnect|$OSC_BIN|" "$f" >"$tmp/$(basename "$f" .in)"
done
grep -q '@[A-Z_]*@' "$tmp/osconnect.service" "$tmp/osconnect-send@.service" && bad "an @VAR@ is left in a unit"

verify() { (cd "$tmp" && systemd-analyze verify --man=no "$@" 2>&1); }
units=(./osconnect.service ./osconnect-send@employees.service ./osconnect-send@employees.timer)
out=$(verify "${units[@]}"); rc=$?
[ $rc -eq 0 ] && ok || bad "systemd-analyze verify exited $rc"
[ -z "$out" ] && ok || bad "systemd-analyze verify warned: $out"

# the check above can fail: a misspelt key is reported
cp "$tmp/osconnect.service" "$tmp/broken.service"
sed -i 's/^ProtectHome=yes/ProtectHomme=yes/' "$tmp/broken.service"
case $(verify ./broken.service) in *"Unknown key"*ProtectHomme*) ok ;; *) bad "verify missed a misspelt key" ;; esac

# systemd's own rating of the sandbox: exposure at most 2.0 of 10 ("OK")
for u in ./osconnect.service ./osconnect-send@employees.service; do
  out=$(cd "$tmp" && systemd-analyze security --offline=yes --threshold=20 "$u" 2>&1) && ok ||
    bad "$u: exposure above 2.0: $(echo "$out" | tail -1)"
done

has() { grep -qx -- "$2" "$tmp/$1" && ok || bad "$1 lacks '$2'"; }
for u in osconnect.service osconnect-send@.service; do
  for line in User=osconnect Group=osconnect StateDirectory=osconnect ConfigurationDirectory=osconnect \
      'WorkingDirectory=%S/osconnect' NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
      PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
      ProtectControlGroups=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' CapabilityBoundingSet= \
      SystemCallFilter=@system-service 'EnvironmentFile=-/etc/osconnect/osconnect.env'; do
    has "$u" "$line"
  done
done
has osconnect.service Type=notify
has osconnect.service WatchdogSec=5min
has osconnect.service Restart=on-failure
has osconnect.service 'ExecReload=/bin/kill -HUP $MAINPID'
has osconnect.service "ExecStart=$OSC_BIN run -c /etc/osconnect/osconnect.yaml"
has osconnect-send@.service Type=oneshot
has osconnect-send@.service 'EnvironmentFile=/etc/osconnect/send-%i.env'
has osconnect-send@.service "ExecStart=$OSC_BIN send -c /etc/osconnect/osconnect.yaml -d %i --no-progress \$OSCONNECT_SEND_FLAGS \${OSCONNECT_SEND_INPUT}"
has osconnect-send@.timer OnCalendar=daily
has osconnect-send@.timer Persistent=true
has osconnect-send@.timer WantedBy=timers.target

# the example send-NAME.env sets what the send unit reads
for v in OSCONNECT_SEND_INPUT OSCONNECT_SEND_FLAGS; do
  grep -q "^$v=" "$OSC_SRC/packaging/send-employees.env" && ok || bad "send-employees.env lacks $v"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
