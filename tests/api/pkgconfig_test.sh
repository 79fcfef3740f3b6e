#!/bin/sh
# pkg-config test: install the current build into a temporary DESTDIR, then
# build a program from outside the tree exactly as a user would,
#   cc outside_app.c $(pkg-config --cflags --libs nnkit)
# and run it against the installed libnnkit.so.0. Then the same program is
# linked against the installed static archive (pkg-config --static).
#
# usage: pkgconfig_test.sh BUILD_ROOT OUTSIDE_APP_C [SANITIZE]
#   BUILD_ROOT     meson build directory (meson.project_build_root())
#   OUTSIDE_APP_C  path of tests/api/outside_app.c
#   SANITIZE       the build's b_sanitize value ('none' or e.g.
#                  'address,undefined'); a sanitized library needs the
#                  program linked with the same -fsanitize flags.
set -eu

build=${1:?usage: pkgconfig_test.sh BUILD_ROOT OUTSIDE_APP_C [SANITIZE]}
app_src=${2:?usage: pkgconfig_test.sh BUILD_ROOT OUTSIDE_APP_C [SANITIZE]}
sanitize=${3:-none}

fail() {
  echo "pkgconfig_test: FAIL: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nnkit-pkgconfig.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/dest

# meson test has already built everything; install only copies files.
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet \
  >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "meson install failed"; }

pc=$(find "$dest" -name nnkit.pc -type f | head -n 1)
[ -n "$pc" ] || fail "meson install put no nnkit.pc under $dest"
so=$(find "$dest" -name 'libnnkit.so.0' | head -n 1)
[ -n "$so" ] || fail "meson install put no libnnkit.so.0 under $dest"
libdir=$(dirname "$so")
header=$(find "$dest" -path '*/include/nnkit.h' -type f | head -n 1)
[ -n "$header" ] || fail "meson install put no nnkit.h under $dest"
[ -f "$(dirname "$header")/nnkit/version.h" ] || fail "nnkit/version.h is not installed next to nnkit.h"
echo "installed: $pc"

# The .pc file names the configured prefix (e.g. /usr/local); the sysroot
# variable makes pkg-config prepend the DESTDIR to its -I and -L paths.
PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

pkg-config --exists nnkit || fail "pkg-config cannot find nnkit: $(pkg-config --print-errors --exists nnkit 2>&1)"
flags=$(pkg-config --cflags --libs nnkit)
echo "pkg-config --cflags --libs nnkit: $flags"

extra=
if [ "$sanitize" != none ] && [ -n "$sanitize" ]; then
  extra="-fsanitize=$sanitize"
fi

cp "$app_src" "$tmp/outside_app.c"
cd "$tmp"

# The command a user types (plus -o, and -fsanitize for a sanitized build).
echo "+ cc outside_app.c -o outside_app $flags $extra"
# shellcheck disable=SC2086,SC2046 # word splitting of the flags is intended
cc outside_app.c -o outside_app $(pkg-config --cflags --libs nnkit) $extra \
  || fail "the outside program does not build with pkg-config's flags"

# No rpath points into the build tree: the loader must find the installed
# copy through LD_LIBRARY_PATH, the way a packaged library is found.
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
resolved=$(ldd ./outside_app | awk '/libnnkit\.so/ {print $3}')
case $resolved in
  "$dest"/*) echo "outside_app uses $resolved" ;;
  *) fail "outside_app resolves libnnkit.so.0 to '$resolved', not the installed copy under $dest" ;;
esac
./outside_app || fail "the outside program (shared) failed"

# Static: the same pkg-config query with --static for the private
# dependencies, pointed at the archive instead of the shared object.
if [ -f "$libdir/libnnkit.a" ]; then
  static_libs=$(pkg-config --static --libs nnkit | sed 's/-lnnkit\([[:space:]]\|$\)/-l:libnnkit.a\1/')
  echo "+ cc outside_app.c -o outside_app_static $(pkg-config --cflags nnkit) $static_libs $extra"
  # shellcheck disable=SC2086,SC2046
  cc outside_app.c -o outside_app_static $(pkg-config --cflags nnkit) $static_libs $extra \
    || fail "the outside program does not link statically with pkg-config --static"
  if ldd ./outside_app_static | grep -q libnnkit; then
    fail "outside_app_static still loads libnnkit.so"
  fi
  ./outside_app_static || fail "the outside program (static) failed"
else
  echo "no libnnkit.a installed; static link skipped"
fi

echo "ok: an outside program builds with pkg-config and runs (shared and static)"
