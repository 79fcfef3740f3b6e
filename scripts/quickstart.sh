#!/usr/bin/env bash
# The handwritten-digits case study, from a fresh Debian machine:
# installs whatever is missing, fetches the digits into data/digits/,
# builds nnkit (release, in build/) and trains examples/digits.c, which
# prints one line per epoch and the final "test accuracy: ..." line.
#
#   scripts/quickstart.sh [digits options...]   e.g. --epochs 5 --threads 2
#
# Idempotent: on a warm machine it installs nothing, downloads nothing and
# rebuilds only what changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '=== quickstart.sh: %s\n' "$*"; }
die() { printf 'quickstart.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/packages.sh
. "$root/scripts/packages.sh"

install_missing "${build_packages[@]}"

if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=python3; fi
"$python" scripts/fetch_digits.py || die "fetching the digits"

if [ -f build/meson-private/coredata.dat ]; then
  if ! meson setup --reconfigure build -Dbuildtype=release >build.setup.log 2>&1; then
    cat build.setup.log
    meson setup --wipe build -Dbuildtype=release || die "meson setup build"
  fi
  rm -f build.setup.log
else
  meson setup build -Dbuildtype=release || die "meson setup build"
fi
say "building"
meson compile -C build digits || die "build"

say "training: build/examples/digits --data data/digits $*"
exec build/examples/digits --data data/digits "$@"
