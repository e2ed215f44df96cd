#!/usr/bin/env bash
# `cmake --install` (what `make install` and the Debian package both run) of the build under
# test into a DESTDIR: exactly the expected files (binary, man page, bash completion, systemd
# units naming the installed binary, sysusers.d and tmpfiles.d entries, the send-NAME.env
# example, /etc/osconnect/osconnect.yaml with mode 0640), and a second install keeps an
# edited /etc/osconnect/osconnect.yaml.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

build=$(dirname "$OSC_BIN")
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ -n "$prefix" ] || { echo "FAIL: no CMAKE_INSTALL_PREFIX in $build/CMakeCache.txt"; exit 1; }
unitdir=$prefix/lib/systemd/system
[ "$prefix" = /usr ] && unitdir=/lib/systemd/system
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

DESTDIR=$root cmake --install "$build" >"$tmp/log" 2>&1 && ok || { bad "cmake --install failed"; cat "$tmp/log"; }
expected=$(printf '%s\n' "$prefix/bin/osconnect" "$prefix/share/man/man1/osconnect.1" \
  "$prefix/share/bash-completion/completions/osconnect" "$prefix/lib/sysusers.d/osconnect.conf" \
  "$prefix/lib/tmpfiles.d/osconnect.conf" "$prefix/share/doc/osconnect/examples/send-employees.env" \
  "$unitdir/osconnect.service" "$unitdir/osconnect-send@.service" "$unitdir/osconnect-send@.timer" \
  /etc/osconnect/osconnect.yaml | sort)
got=$(cd "$root" && find . -type f | sed 's|^\.||' | sort)
[ "$got" = "$expected" ] && ok || { bad "installed files differ"; diff <(echo "$expected") <(echo "$got"); }

conf=$root/etc/osconnect/osconnect.yaml
[ "$(stat -c %a "$conf")" = 640 ] && ok || bad "osconnect.yaml has mode $(stat -c %a "$conf"), want 640"
grep -qx "ExecStart=$prefix/bin/osconnect run -c /etc/osconnect/osconnect.yaml" "$root$unitdir/osconnect.service" \
  && ok || bad "osconnect.service does not run $prefix/bin/osconnect"
grep -q '^u osconnect ' <(tr -s ' ' <"$root$prefix/lib/sysusers.d/osconnect.conf") && ok || bad "sysusers.d lacks the osconnect user"
"$root$prefix/bin/osconnect" --version | grep -q '^osconnect ' && ok || bad "installed binary does not run"

echo "# edited" >>"$conf"
DESTDIR=$root cmake --install "$build" >"$tmp/log" 2>&1
grep -q "Keeping $root/etc/osconnect/osconnect.yaml" "$tmp/log" && ok || bad "second install did not say it keeps the config"
[ "$(tail -1 "$conf")" = "# edited" ] && ok || bad "second install overwrote the edited config"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
