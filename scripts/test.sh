#!/usr/bin/env bash
# Runs every nnkit test, installing whatever is missing first.
#
#   scripts/test.sh             normal build + tests, then an address/undefined
#                               sanitizer build + tests, then the unit suites
#                               under valgrind
#   scripts/test.sh --quick     the normal build and its tests only
#   scripts/test.sh --sanitize  the sanitizer build + tests and valgrind only
#
# Build directories: build/ (release, the one quickstart.sh uses too) and
# build-asan/ (debug, -Db_sanitize=address,undefined). Idempotent: on a warm
# machine it installs nothing, downloads nothing and rebuilds only what
# changed. Exits non-zero, loudly, on the first failing stage, and ends with
# a "summary: N passed, N failed" line over all stages.
set -euo pipefail

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

mode=full
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --sanitize) mode=sanitize ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '\n=== test.sh: %s\n' "$*"; }
die() { printf '\ntest.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
packages=(build-essential meson ninja-build pkg-config libopenblas-dev
  zlib1g-dev check libcjson-dev python3 python3-numpy valgrind g++ binutils
  ca-certificates libgfortran-12-dev libcsv-dev libstb-dev libjpeg62-turbo-dev
  liblapacke-dev
  python3-matplotlib)

# shellcheck source=scripts/packages.sh
. "$root/scripts/packages.sh"

install_missing "${packages[@]}"

# Debian's python3 has numpy; a pyenv python3 earlier on PATH may not.
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=python3; fi

# ---------------------------------------------------------------- data
"$python" scripts/fetch_digits.py

# ---------------------------------------------------------------- helpers
passed=0
failed=0
skipped=0

summary() {
  if [ $skipped -gt 0 ]; then
    printf '\nsummary: %d passed, %d failed, %d skipped\n' $passed $failed $skipped
  else
    printf '\nsummary: %d passed, %d failed\n' $passed $failed
  fi
}

# configure DIR [meson options...]: set up DIR, or reconfigure it with the
# same options (cheap when nothing changed; wipes a stale directory).
configure() {
  local dir=$1
  shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    if ! meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1; then
      cat "$dir.setup.log"
      say "reconfiguring $dir failed; wiping it"
      meson setup --wipe "$dir" "$@" || die "meson setup $dir"
    fi
    rm -f "$dir.setup.log"
  else
    meson setup "$dir" "$@" || die "meson setup $dir"
  fi
}

build() {
  say "building $1"
  meson compile -C "$1" || die "build of $1"
}

# run_tests LABEL DIR [meson test options...]
run_tests() {
  local label=$1 dir=$2 rc=0 counts logs
  shift 2
  say "tests: $label"
  rm -f "$dir/meson-logs/testlog-$label".json "$dir/meson-logs/testlog-$label"-*.json
  meson test -C "$dir" --print-errorlogs --logbase "testlog-$label" "$@" || rc=$?
  # meson names the log testlog-LABEL.json, or testlog-LABEL-WRAPPER.json.
  logs=("$dir/meson-logs/testlog-$label"*.json)
  counts=$("$python" - "${logs[0]}" <<'EOF'
import json, sys
ok = bad = skip = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif r == "SKIP":
                skip += 1
            else:
                bad += 1
except OSError:
    pass
print(ok, bad, skip)
EOF
  )
  read -r p f s <<<"$counts"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
    summary
    die "$label: meson test exited $rc ($f failing tests; logs in $dir/meson-logs/)"
  fi
  if [ "$p" -eq 0 ]; then
    summary
    die "$label: no test ran"
  fi
}

# ---------------------------------------------------------------- stages
normal_build() {
  configure build -Dbuildtype=release
  build build
}

if [ "$mode" != sanitize ]; then
  normal_build
  run_tests normal build
fi

if [ "$mode" != quick ]; then
  configure build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  build build-asan
  # The end-to-end example runs (suite 'examples') train for real and take
  # minutes in an unoptimized sanitizer build; they run in the normal
  # stage, and the library code they use runs here through the unit tests.
  ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_tests sanitize build-asan --no-suite examples

  if [ "$mode" = sanitize ]; then
    normal_build
  fi
  # Check's fork mode would hide the children from valgrind: CK_FORK=no.
  # One BLAS thread keeps valgrind's serialized threads fast.
  CK_FORK=no OPENBLAS_NUM_THREADS=1 \
    run_tests valgrind build --no-rebuild --suite unit --timeout-multiplier 10 \
    --wrapper='valgrind --quiet --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect'
fi

summary
echo "test.sh: all stages passed ($mode)"
