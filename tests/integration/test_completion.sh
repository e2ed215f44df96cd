#!/usr/bin/env bash
# The bash completion (packaging/bash-completion/osconnect): it offers every subcommand, every
# option that `osconnect CMD --help` lists (so a new flag without completion fails here), the
# values of --log-format and --input-format, and the destination names of the config named
# with -c or found by the default lookup.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# shellcheck source=/dev/null
source "$OSC_SRC/packaging/bash-completion/osconnect"
complete_words() { # complete_words WORD... : the completions offered for the last word
  COMP_WORDS=(osconnect "$@"); COMP_CWORD=$#; COMPREPLY=()
  _osconnect
  printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' '
}
offers() { case " $(complete_words "${@:2}") " in *" $1 "*) ok ;; *) bad "'$1' not offered after: ${*:2}" ;; esac; }

for c in check send commit preview test presence run sim demo help; do offers "$c" ""; done
for c in check send commit preview test presence run sim demo; do
  opts=$("$OSC_BIN" "$c" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' | grep -oE -- '-[-a-zA-Z]+')
  [ -n "$opts" ] && ok || bad "$c --help lists no options"
  for o in $opts; do offers "$o" "$c" -; done
done
offers json send --log-format ""
offers csv send --input-format ""
offers config help ""

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'destinations:\n  employees:\n    template: upsert_employees\n  commit: # trigger\n    template: trigger_directory_import\npresence:\n  state: x\n' >"$tmp/c.yaml"
[ "$(complete_words send -c "$tmp/c.yaml" -d "")" = "commit employees " ] && ok || bad "destinations of -c: '$(complete_words send -c "$tmp/c.yaml" -d "")'"
[ "$(complete_words preview -c "$tmp/c.yaml" --commit co)" = "commit " ] && ok || bad "--commit completion"
cd "$tmp" && cp c.yaml osconnect.yaml && unset OSCONNECT_CONFIG
[ "$(complete_words send -d e)" = "employees " ] && ok || bad "destinations of ./osconnect.yaml"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
