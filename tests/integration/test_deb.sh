#!/usr/bin/env bash
# The Debian package, when `make deb` has built one (build-deb/, or $OSC_DEB_DIR); skipped
# (exit 77) otherwise. Always: the versions in CMakeLists.txt, debian/changelog and
# include/osc/version.h agree. With a package: `dpkg-deb -c` lists exactly the expected files
# (the config 0640 and a conffile; the postinst creates the osconnect user with
# systemd-sysusers); `dpkg-deb -x` into a temp dir, then the unpacked binary runs --version,
# `check --offline` on the unpacked /etc/osconnect/osconnect.yaml (its key files written next
# to it), and `check` against the unpacked binary's simulator (base_url and the other URLs
# pointed at it); and `make install DESTDIR=... PREFIX=/usr` installs the same files as the
# package, minus what debhelper adds (copyright, changelog, lintian overrides).
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }

cmake_v=$(sed -n 's/^project(osconnect VERSION \([0-9.]*\).*/\1/p' "$OSC_SRC/CMakeLists.txt")
deb_v=$(dpkg-parsechangelog -l "$OSC_SRC/debian/changelog" -S Version)
hdr_v=$(sed -n 's/^#define OSC_VERSION *"\(.*\)"/\1/p' "$OSC_SRC/include/osc/version.h")
[ -n "$cmake_v" ] && [ "$cmake_v" = "$deb_v" ] && [ "$cmake_v" = "$hdr_v" ] && ok ||
  bad "versions differ: CMakeLists.txt '$cmake_v', debian/changelog '$deb_v', version.h '$hdr_v'"

dir=${OSC_DEB_DIR:-$OSC_SRC/build-deb}
deb=$(ls "$dir"/osconnect_*_*.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
  echo "SKIP: no package in $dir (run make deb); only the versions were checked"
  [ $fail -eq 0 ] && exit 77
  finish
fi
echo "checking $deb"
newer=$(find "$OSC_SRC/CMakeLists.txt" "$OSC_SRC/src" "$OSC_SRC/packaging" "$OSC_SRC/debian" -newer "$deb" -type f | head -3)
[ -n "$newer" ] && echo "note: $deb is older than $(echo $newer): if a check fails, run make deb again"
[ "$(dpkg-deb -f "$deb" Version)" = "$cmake_v" ] && ok || bad "$deb is not version $cmake_v: run make deb again"

tmp=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# ---- contents
dpkg-deb -c "$deb" >"$tmp/list"
files=$(awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' "$tmp/list" | sort)
debhelper_adds=$(printf '%s\n' /usr/share/doc/osconnect/changelog.gz /usr/share/doc/osconnect/copyright \
  /usr/share/lintian/overrides/osconnect)
installed=$(printf '%s\n' /usr/bin/osconnect /usr/share/man/man1/osconnect.1.gz \
  /usr/share/bash-completion/completions/osconnect /usr/lib/sysusers.d/osconnect.conf \
  /usr/lib/tmpfiles.d/osconnect.conf /usr/share/doc/osconnect/examples/send-employees.env \
  /lib/systemd/system/osconnect.service /lib/systemd/system/osconnect-send@.service \
  /lib/systemd/system/osconnect-send@.timer /etc/osconnect/osconnect.yaml)
expected=$(printf '%s\n%s\n' "$installed" "$debhelper_adds" | sort)
[ "$files" = "$expected" ] && ok || { bad "package files differ"; diff <(echo "$expected") <(echo "$files"); }
grep -q '^-rw-r----- root/root .* \./etc/osconnect/osconnect\.yaml$' "$tmp/list" && ok || bad "osconnect.yaml is not 0640"

mkdir "$tmp/ctl"
dpkg-deb -e "$deb" "$tmp/ctl"
grep -qx /etc/osconnect/osconnect.yaml "$tmp/ctl/conffiles" && ok || bad "osconnect.yaml is not a conffile"
grep -q 'systemd-sysusers .*osconnect.conf' "$tmp/ctl/postinst" && ok || bad "postinst does not create the user"
grep -q 'chgrp osconnect "$conf"' "$tmp/ctl/postinst" && ok || bad "postinst does not give the config to group osconnect"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libcurl4 libjansson4 libsystemd0 libmicrohttpd12 liblua5.4-0; do
  case $depends in *"$lib"*) ok ;; *) bad "Depends lacks $lib (shlibs): $depends" ;; esac
done

# ---- the unpacked binary
x=$tmp/x
dpkg-deb -x "$deb" "$x"
bin=$x/usr/bin/osconnect
"$bin" --version | grep -q "^osconnect $cmake_v " && ok || bad "unpacked --version: $("$bin" --version 2>&1)"
etc=$x/etc/osconnect
out=$("$bin" check --offline -c "$etc/osconnect.yaml" 2>&1)
case $out in *"cannot open $etc/officespace.key"*) ok ;; *) bad "without key files: $out" ;; esac
printf 'sim-officespace-key-0123456789abcdef\n' >"$etc/officespace.key"
printf 'sim-mapped-token-0123456789abcdef\n' >"$etc/mapped.token"
chmod 600 "$etc/officespace.key" "$etc/mapped.token"
out=$("$bin" check --offline -c "$etc/osconnect.yaml" 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "check --offline exited $rc: $out"
case $out in *"ok (2 destinations, presence sync configured)"*) ok ;; *) bad "check --offline said: $out" ;; esac

"$bin" sim --mapped-port 0 --officespace-port 0 >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
for _ in $(seq 300); do [ "$(grep -c '^[a-z]* http' "$tmp/sim.out")" -ge 2 ] && break; sleep 0.05; done
M=$(sed -n 's/^mapped //p' "$tmp/sim.out")
O=$(sed -n 's/^officespace //p' "$tmp/sim.out")
[ -n "$M" ] && [ -n "$O" ] && ok || bad "the unpacked simulator printed no URLs: $(cat "$tmp/sim.err")"
sed -e "s|^  # base_url: .*|  base_url: $O|" -e "s|^  # graphql_url: .*|  graphql_url: $O/graphql|" \
    -e "s|^  # url: https://api.mapped.com/graphql|  url: $M|" "$etc/osconnect.yaml" >"$etc/sim.yaml"
[ "$(grep -c "http://127.0.0.1" "$etc/sim.yaml")" = 3 ] && ok || bad "the example's commented URL lines changed"
out=$("$bin" check -c "$etc/sim.yaml" 2>&1); rc=$?
[ $rc -eq 0 ] && ok || bad "check against the simulator exited $rc: $out"
case $out in *"officespace rest     GET $O/api/1/sites: ok"*) ok ;; *) bad "REST check: $out" ;; esac
case $out in *"mapped               POST $M: ok, 2 of 2 buildings found"*) ok ;; *) bad "Mapped check: $out" ;; esac
kill "$sim_pid" && wait "$sim_pid"
sim_pid=

# ---- make install installs the same files (a release build in the temp dir)
if make -s -C "$OSC_SRC" install BUILD="$tmp/build" DESTDIR="$tmp/inst" PREFIX=/usr >"$tmp/make.log" 2>&1; then
  ok
  got=$(cd "$tmp/inst" && find . -type f | sed -e 's|^\.||' -e 's|/man1/osconnect\.1$|&.gz|' | sort)
  [ "$got" = "$(echo "$installed" | sort)" ] && ok ||
    { bad "make install and the package differ"; diff <(echo "$installed" | sort) <(echo "$got"); }
else
  bad "make install failed"; tail -20 "$tmp/make.log"
fi
finish
