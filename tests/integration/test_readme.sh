#!/usr/bin/env bash
# The README's command examples run as written from a fresh clone: the shell block of
# "Record delivery" (preview, test, send, the resend of the dead letters) and the two
# `--once` lines of "Presence sync", in a copy of examples/ with build/osconnect in it,
# against `osconnect sim`. The simulator listens on free ports here, so 127.0.0.1:18081 and
# :18080 (its default ports, checked against `osconnect sim --help`) are rewritten to them;
# `make` is left out (the binary is built) and so are the lines that start the simulator or a
# daemon. One batch import is refused after `test`, so the send leaves dead letters (exit 65,
# no commit) and the resend commits: the directory then holds the 300 employees.
# Also: every examples/ file the README names exists, and the demo excerpt is what
# `osconnect demo` prints.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

readme=$OSC_SRC/README.md
tmp=$(mktemp -d)
simpid=
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# every examples/... and packaging/... path the README names exists
# (paths of the checkout: not part of an installed path such as /usr/share/doc/osconnect/examples/)
for f in $(grep -oE '(^|[^/A-Za-z0-9_.-])(examples|packaging|docs|tests/integration)/[A-Za-z0-9_./@-]+' "$readme" |
  sed -e 's/^[^a-z]//' -e 's/[.)]*$//' | sort -u); do
  case $f in examples/employees.dead.jsonl) continue ;; esac # written by the commands below
  [ -e "$OSC_SRC/$f" ] && ok || bad "README names $f, which does not exist"
done
for f in hr.csv delivery.yaml asset.json presence.yaml; do
  grep -qE "(^|[ \`(])$f" "$readme" && bad "README names $f without a folder" || ok
done

# the default ports the README relies on
help=$("$OSC_BIN" sim --help)
case $help in *"(default 18081;"*) ok ;; *) bad "the simulator's OfficeSpace port is not 18081" ;; esac
case $help in *"(default 18080;"*) ok ;; *) bad "the simulator's Mapped port is not 18080" ;; esac

# a fresh clone, as far as these commands see it
mkdir -p "$tmp/clone/build"
cp -r "$OSC_SRC/examples" "$tmp/clone/"
ln -s "$OSC_BIN" "$tmp/clone/build/osconnect"

: >"$tmp/sim.out"
"$OSC_BIN" sim --mapped-port 0 --officespace-port 0 >"$tmp/sim.out" 2>&1 &
simpid=$!
for _ in $(seq 1 300); do
  grep -q '^officespace ' "$tmp/sim.out" && grep -q '^mapped ' "$tmp/sim.out" && break
  sleep 0.05
done
os_url=$(sed -n 's/^officespace \(http[^ ]*\).*/\1/p' "$tmp/sim.out")
mapped_url=$(sed -n 's/^mapped \(http[^ ]*\).*/\1/p' "$tmp/sim.out")
[ -n "$os_url" ] && [ -n "$mapped_url" ] || { echo "the simulator did not start"; cat "$tmp/sim.out"; exit 1; }
os_port=${os_url##*:}
mapped_port=${mapped_url##*:}; mapped_port=${mapped_port%%/*}

# the shell block after a heading: its lines, without comments
block() {
  awk -v h="$1" '$0 == h { f = 1; next } f && /^```sh$/ { b = 1; next } b && /^```$/ { exit } b' "$readme" |
    sed -e 's/[[:space:]]\+#[[:space:]].*$//'
}

# one script: each line as written (ports rewritten), then its exit status
script=$tmp/readme-commands.sh
{
  echo "cd '$tmp/clone' || exit 1"
  n=0
  while IFS= read -r line; do
    case $line in
      "osconnect sim &") continue ;;
      "make && "*) line=${line#make && } ;;
      "make"*) continue ;;
      "osconnect presence "*--once* | "osconnect run "*--once*) ;;
      "osconnect presence "* | "osconnect run "*) continue ;; # daemons: test_run.c runs them
    esac
    line=${line//127.0.0.1:18081/127.0.0.1:$os_port}
    line=${line//127.0.0.1:18080/127.0.0.1:$mapped_port}
    n=$((n + 1))
    printf '%s >"%s/out.%d" 2>"%s/err.%d"\necho "$?" >"%s/rc.%d"\n' "$line" "$tmp" $n "$tmp" $n "$tmp" $n
    printf 'echo %q >"%s/cmd.%d"\n' "$line" "$tmp" $n
    case $line in
      "osconnect test "*) # from here on one batch import is refused: the send leaves dead letters
        printf "curl -s -o /dev/null -X POST --data '422x1:path=/api/1/employee_batch_imports' '%s/_sim/faults'\n" "$os_url" ;;
    esac
  done < <(block "## Record delivery"; block "## Presence sync")
} >"$script"
bash "$script"

expect() { # expect N STATUS TEXT: command N exited STATUS and said TEXT (on stdout or stderr)
  local cmd rc
  cmd=$(cat "$tmp/cmd.$1" 2>/dev/null) rc=$(cat "$tmp/rc.$1" 2>/dev/null)
  [ "$rc" = "$2" ] || { bad "'$cmd' exited ${rc:-?}, not $2:"; cat "$tmp/out.$1" "$tmp/err.$1" 2>/dev/null | head -20; return; }
  grep -qF -- "$3" "$tmp/out.$1" "$tmp/err.$1" && ok || { bad "'$cmd' did not say '$3':"; cat "$tmp/out.$1" "$tmp/err.$1" | head -20; }
}
# 1, 2: the exports of PATH and of the simulator's address and key
expect 3 0 "POST $os_url/api/1/employee_batch_imports"                 # preview
expect 4 0 "200"                                                         # test
expect 5 65 "commit: directory import NOT triggered"                    # send: a batch refused
expect 6 0 "commit: directory import triggered for source 'HRIS'"       # the resend, committed
# 7, 8: the exports for examples/presence.yaml
expect 9 0 "would be pushed"                                             # presence --once --dry-run
expect 10 0 "pushed"                                                     # presence --once
[ -f "$tmp/cmd.11" ] && bad "more README lines ran than this test checks: $(cat "$tmp/cmd.11")" || ok

live=$(curl -s "$os_url/_sim/employees" | tr -d ' \n' | grep -oE '"HRIS":\{"staged":[0-9]+,"live":[0-9]+' | grep -oE '[0-9]+$')
[ "$live" = 300 ] && ok || bad "the directory holds ${live:-?} employees of source HRIS, not 300"
[ -s "$tmp/clone/examples/employees.dead.jsonl" ] && ok || bad "no dead letters were written in examples/"

# the demo excerpt of "Two commands" is what `osconnect demo` prints now: each of its lines
# ("..." stands for lines left out) comes in this order, once times, temporary folders and
# durations are masked. The simulated sensors change with time, so the counts of a presence
# cycle are masked too, and the rows of the table are left out (its heading stays).
norm() {
  sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TIME/g' -e 's#/tmp/osconnect-demo-[A-Za-z0-9]+#DEMO#g' \
    -e 's/, [0-9]+\.[0-9]+s$/, Ns/' -e '/\[presence\] cycle: /s/[0-9]+/N/g' |
    grep -vE '^(room|desk|floor|neighborhood|site) +[0-9]'
}
excerpt=$(awk '/^## Two commands/ { f = 1 }
  f && /^```/ { if (inb) { if (cap) exit; inb = 0 } else { inb = 1; first = 1 }; next }
  f && inb { if (first && /^== 3\./) cap = 1; first = 0; if (cap) print }' "$readme" | grep -v '^\.\.\.$' | norm)
demo_out=$(cd "$tmp" && "$OSC_BIN" demo 2>&1 | norm)
[ -n "$excerpt" ] && ok || bad "no demo excerpt in the README"
rest=$demo_out
while IFS= read -r line; do
  case $rest in
    *"$line"*) rest=${rest#*"$line"}; ok ;;
    *) bad "demo excerpt line not printed by osconnect demo (in this order): $line" ;;
  esac
done <<<"$excerpt"

# nothing leaks the credentials
if grep -rqF -e sim-officespace-key-0123456789abcdef -e sim-mapped-token-0123456789abcdef "$tmp"/out.* "$tmp"/err.*; then
  bad "a credential in the output"
else
  ok
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
