#!/usr/bin/env bash
# The ABI gate of libnnkit.so (scripts/test.sh runs it in full mode).
#
#   scripts/abi_check.sh LIB            compare LIB with abi/libnnkit.so.N.abi
#   scripts/abi_check.sh LIB --update   rewrite the baseline from LIB
#
# LIB must carry debug information (build-tsan's, -Dbuildtype=debugoptimized,
# is what test.sh passes). The baseline is abidw's description of the
# current soname's exported functions and the types they use (public headers
# only; types defined elsewhere, like the opaque handles' structs, are left
# out with --drop-private-types: their layout is not part of the ABI). Added
# functions and types are compatible: the gate passes and says
# so. A removed or changed function or variable fails the gate unless the
# same commit updates the baseline (run with --update, review the diff of
# abi/, commit it with the change; an incompatible change also needs a new
# soname in meson.build). Also checks that the library imports none of
# abort, exit, _exit, _Exit, quick_exit, system, popen (nm -D): the library
# never ends or forks its host.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=${1:?usage: abi_check.sh LIB [--update]}
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
baseline=${NNKIT_ABI_BASELINE:-"$root/abi/$soname.abi"}

forbidden=$(nm -D --undefined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
  grep -xE 'abort|exit|_exit|_Exit|quick_exit|system|popen' || true)
if [ -n "$forbidden" ]; then
  echo "abi: FAILED: $lib imports $(echo $forbidden)" >&2
  exit 1
fi
echo "abi: $lib imports none of abort, exit, _exit, _Exit, quick_exit, system, popen"

current=$(mktemp)
trap 'rm -f "$current"' EXIT
abidw --no-show-locs --no-corpus-path --drop-private-types --headers-dir "$root/include/nnkit" \
  --headers-dir "$(dirname "$lib")/../include/nnkit" --out-file "$current" "$lib"
if [ "${2:-}" = --update ]; then
  cp "$current" "$baseline"
  echo "abi: baseline $baseline rewritten from $lib; review and commit it"
  exit 0
fi
[ -f "$baseline" ] || { echo "abi: FAILED: no baseline $baseline (run with --update)" >&2; exit 1; }
rc=0
report=$(abidiff --no-show-locs "$baseline" "$current") || rc=$?
if [ $((rc & 3)) -ne 0 ]; then
  echo "$report"
  echo "abi: FAILED: abidiff could not compare (exit $rc)" >&2
  exit 1
fi
# "Functions changes summary: R Removed, C Changed, A Added functions"
summary() { # KIND WORD
  echo "$report" | sed -n "s/.*$1 changes summary: .*\b\([0-9][0-9]*\) $2.*/\1/p" | head -1
}
fr=$(summary Functions Removed); fc=$(summary Functions Changed)
fa=$(echo "$report" | sed -n 's/.*Functions changes summary: .* \([0-9][0-9]*\) Added.*/\1/p' | head -1)
vr=$(summary Variables Removed); vc=$(summary Variables Changed)
# Exported symbols without debug information (their removal is a break too).
sr=$(echo "$report" | sed -n 's/.*Function symbols changes summary: \([0-9][0-9]*\) Removed.*/\1/p' | head -1)
fr=${fr:-0} fc=${fc:-0} fa=${fa:-0} vr=${vr:-0} vc=${vc:-0} sr=${sr:-0}
if [ "$fr" -ne 0 ] || [ "$fc" -ne 0 ] || [ "$vr" -ne 0 ] || [ "$vc" -ne 0 ] ||
  [ "$sr" -ne 0 ]; then
  echo "$report"
  echo "abi: FAILED: $fr functions removed, $fc changed, $vr variables removed, $vc changed" \
    "against $baseline; if intended, run scripts/abi_check.sh $lib --update and commit abi/" >&2
  exit 1
fi
echo "abi: $soname matches $baseline: 0 functions removed or changed, $fa added" \
  "(compatible$([ "$fa" -ne 0 ] && echo "; update the baseline with --update when convenient"))"
