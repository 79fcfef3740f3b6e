#!/usr/bin/env bash
# Runs every nnkit test, installing whatever is missing first.
#
#   scripts/test.sh             every stage below
#   scripts/test.sh --quick     the normal build and its tests only
#   scripts/test.sh --sanitize  the sanitizer build + tests and valgrind only
#
# Stages (full mode), each timed: normal build + tests; the docs (every
# command, C program and Python snippet of README.md and doc/guide/); the reliability
# sweeps (allocation failures under an LD_PRELOAD shim, corruptions of a
# model file and a checkpoint, SIGKILLs during saves); an address/undefined
# sanitizer build + tests; the unit suites under valgrind; the Python suite
# under ASan; the libFuzzer targets (NNKIT_FUZZ_RUNS executions each,
# default 100000); a ThreadSanitizer build of the unit suites and a
# two-thread training run; the ABI gate (abidiff against abi/, nm -D).
# Each stage prints its figures (doc/reliability.md quotes them).
#
# Build directories: build/ (release, the one quickstart.sh uses too),
# build-asan/ (debug, -Db_sanitize=address,undefined), build-fuzz/ (clang,
# -Dfuzz=true), build-tsan/ (-Db_sanitize=thread). Idempotent: on a warm
# machine it installs nothing, downloads nothing and rebuilds only what
# changed. Exits non-zero, loudly, on the first failing stage, and ends with
# a "summary: N passed, N failed" line over all stages.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
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
# shellcheck source=scripts/packages.sh
. "$root/scripts/packages.sh"

install_missing "${build_packages[@]}" "${test_packages[@]}"

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
    stage_table
    summary
    die "$label: meson test exited $rc ($f failing tests; logs in $dir/meson-logs/)"
  fi
  if [ "$p" -eq 0 ]; then
    stage_table
    summary
    die "$label: no test ran"
  fi
}

# ---------------------------------------------------------------- timing
stage_names=()
stage_secs=()
stage_t0=0
stage_begin() {
  stage_t0=$(date +%s)
  say "stage $1"
  stage_names+=("$1")
}
stage_end() {
  local dt=$(($(date +%s) - stage_t0))
  stage_secs+=("$dt")
  printf '=== test.sh: stage %s took %d min %02d s\n' "${stage_names[-1]}" $((dt / 60)) $((dt % 60))
}
stage_table() {
  local i total=0
  printf '\nstage times:\n'
  for i in "${!stage_secs[@]}"; do
    printf '  %-14s %3d min %02d s\n' "${stage_names[$i]}" $((stage_secs[i] / 60)) $((stage_secs[i] % 60))
    total=$((total + stage_secs[i]))
  done
  printf '  %-14s %3d min %02d s\n' total $((total / 60)) $((total % 60))
}

# A stage that is one program rather than a meson test run: counted as one
# test in the summary.
one_passed() { passed=$((passed + 1)); }
one_failed() {
  failed=$((failed + 1))
  stage_table
  summary
  die "$1"
}

# ---------------------------------------------------------------- stages
normal_build() {
  configure build -Dbuildtype=release
  build build
}

if [ "$mode" != sanitize ]; then
  stage_begin normal
  normal_build
  # The reliability suite runs as its own stage below (full mode), and so
  # does the docs suite (every command of README and doc/guide/, minutes of
  # training): --quick skips it.
  run_tests normal build --no-suite reliability --no-suite docs
  stage_end
fi

if [ "$mode" = full ]; then
  stage_begin docs
  run_tests docs build --no-rebuild --suite docs
  stage_end
fi

if [ "$mode" = full ]; then
  # Allocation failures (every malloc of the process, through the
  # failmalloc shim), corruptions, SIGKILLs during saves: figures printed.
  stage_begin reliability
  OPENBLAS_NUM_THREADS=1 \
    run_tests reliability build --no-rebuild --suite reliability --verbose
  stage_end
fi

if [ "$mode" != quick ]; then
  stage_begin sanitize
  configure build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  build build-asan
  # The end-to-end example runs (suite 'examples') train for real and take
  # minutes in an unoptimized sanitizer build; they run in the normal
  # stage, and the library code they use runs here through the unit tests.
  # The corruption sweep and the SIGKILL loop run here too (seconds).
  ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_tests sanitize build-asan --no-suite examples
  stage_end

  stage_begin valgrind
  if [ "$mode" = sanitize ]; then
    normal_build
  fi
  # Check's fork mode would hide the children from valgrind: CK_FORK=no.
  # One BLAS thread keeps valgrind's serialized threads fast.
  CK_FORK=no OPENBLAS_NUM_THREADS=1 \
    run_tests valgrind build --no-rebuild --suite unit --timeout-multiplier 10 \
    --wrapper='valgrind --quiet --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect'
  stage_end
fi

if [ "$mode" = full ]; then
  # The Python suite (bad-input cases included) against the ASan build of
  # the library, loaded into Debian's python with libasan preloaded.
  # Python's own allocations at exit are not leaks of ours: no LeakSanitizer.
  stage_begin python-asan
  libasan=$(gcc -print-file-name=libasan.so)
  if LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    NNKIT_LIBRARY="$root/build-asan/lib/libnnkit.so" PYTHONDONTWRITEBYTECODE=1 \
    "$python" tests/reliability/py_asan.py; then
    one_passed
  else
    one_failed "python-asan: the Python suite failed under ASan"
  fi
  stage_end

  # libFuzzer: each target from the seeds the library writes (make_seeds)
  # and tests/corpus, NNKIT_FUZZ_RUNS executions, any finding fails. A
  # crash input is copied to tests/corpus/<target>/: fix the defect and
  # commit the input, which the 'corpus' unit test then replays.
  stage_begin fuzz
  runs=${NNKIT_FUZZ_RUNS:-100000}
  CC=clang configure build-fuzz -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true -Dexamples=false
  fuzz_targets=(model checkpoint idx csv image)
  meson compile -C build-fuzz tests/make_seeds \
    "${fuzz_targets[@]/#/tests/fuzz/fuzz_}" || die "build of build-fuzz"
  work=build-fuzz/fuzz-work
  rm -rf "$work"
  mkdir -p "$work"
  build-fuzz/tests/make_seeds "$work/seeds" >/dev/null || die "fuzz seeds"
  for t in "${fuzz_targets[@]}"; do
    mkdir -p "$work/$t"
    corpus=()
    [ -d "tests/corpus/$t" ] && corpus=("tests/corpus/$t")
    rc=0
    ASAN_OPTIONS=detect_leaks=1 OPENBLAS_NUM_THREADS=1 \
      "build-fuzz/tests/fuzz/fuzz_$t" -runs="$runs" -seed=1 -max_len=65536 \
      -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
      -artifact_prefix="$work/$t-" "$work/$t" "$work/seeds/$t" "${corpus[@]}" \
      >"$work/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1)
    if [ $rc -ne 0 ]; then
      tail -40 "$work/$t.log"
      for a in "$work/$t"-*; do
        [ -f "$a" ] && mkdir -p "tests/corpus/$t" && cp "$a" "tests/corpus/$t/" &&
          echo "kept $a in tests/corpus/$t/"
      done
      one_failed "fuzz_$t: a finding (log $work/$t.log; the input is in tests/corpus/$t/)"
    fi
    echo "fuzz: $t: ${execs:-0} executions (${speed:-?}/s, $cov), 0 findings"
    one_passed
  done
  stage_end

  # ThreadSanitizer: the unit suites and a two-thread training run.
  stage_begin tsan
  configure build-tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false \
    -Dexamples=false
  build build-tsan
  # die_after_fork=0: test_core's parallel_after_fork starts threads in a
  # forked child on purpose (the library's atfork handling), which TSan
  # refuses by default.
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0 \
    OPENBLAS_NUM_THREADS=1 \
    run_tests tsan build-tsan --suite unit --suite threads
  stage_end

  # The ABI gate, on build-tsan's library (built with debug information).
  stage_begin abi
  if scripts/abi_check.sh build-tsan/lib/libnnkit.so; then
    one_passed
  else
    one_failed "abi: the ABI gate failed"
  fi
  stage_end
fi

stage_table
summary
echo "test.sh: all stages passed ($mode)"
