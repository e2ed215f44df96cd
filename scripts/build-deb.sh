#!/usr/bin/env bash
# make deb: build osconnect_<version>_<arch>.deb with the Debian tools (debian/, debhelper)
# and check it with lintian. dpkg-buildpackage writes into the parent of the tree it builds,
# so the build runs on a copy of the checkout's files in OUT/osconnect-<version>/ and every
# output (.deb, -dbgsym .deb, .buildinfo, .changes, lintian.txt) stays in OUT.
# Usage: build-deb.sh [OUT]   (default build-deb; JOBS=n for a parallel build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-deb}
version=$(dpkg-parsechangelog -S Version)
cmake_version=$(sed -n 's/^project(osconnect VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
if [ "$version" != "$cmake_version" ]; then
  echo "build-deb: debian/changelog says $version, CMakeLists.txt $cmake_version" >&2
  exit 1
fi
src="$out/osconnect-$version"
rm -rf "$out"
mkdir -p "$src"
# the files git knows (committed or not, minus ignored ones), as they are in the work tree
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -C "$src" -xf -
echo "build-deb: building $src (log in $out/build.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=${JOBS:-$(nproc)} ${DEB_BUILD_OPTIONS:-}" \
      dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (full log: $out/build.log)" >&2
  exit 1
fi
changes=$(ls "$out"/osconnect_"$version"_*.changes)
echo "build-deb: lintian $changes"
rc=0
lintian --fail-on error --tag-display-limit 0 "$changes" | tee "$out/lintian.txt" || rc=$?
ls -1 "$out"/*.deb
if [ $rc -ne 0 ]; then
  echo "build-deb: lintian found errors" >&2
  exit 1
fi
