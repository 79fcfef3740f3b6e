# Sourced by scripts/test.sh and scripts/quickstart.sh (which define say
# and die first). The one list of the Debian packages nnkit needs (doc/
# building.md's table is checked against it by the 'packages-doc' test):
#   build_packages  building the library and running the examples
#   test_packages   in addition, for scripts/test.sh
# install_missing PACKAGE... installs, with apt-get, the packages of the
# list that are not installed yet, as root or through sudo; on a machine
# without dpkg it assumes they are there.

# One package per line: the name, then what needs it.
build_packages=(
  build-essential   # C compiler, make, libc headers
  meson             # the build system
  ninja-build       # meson's backend
  pkg-config        # finds the libraries below; nnkit.pc for users
  libopenblas-dev   # CBLAS: sgemm for dense and convolution layers
  liblapacke-dev    # LAPACKE: eigendecomposition for PCA/ZCA whitening
  zlib1g-dev        # gzip IDX files, CRC-32 of model files and checkpoints
  libcjson-dev      # JSON headers of model files, checkpoints, history
  libcsv-dev        # the CSV loader
  libstb-dev        # PNG decoding (image folders) and PNG writing
  libjpeg62-turbo-dev # JPEG decoding (image folders)
  python3           # scripts/fetch_digits.py, the Python package
  ca-certificates   # fetching the digits over https
  check             # the C unit tests, built by default (-Dtests=true)
)
test_packages=(
  python3-numpy     # the Python package's NumPy paths and its tests
  python3-matplotlib # the Python package's plots
  python3-tqdm      # the Python package's progress bar (its test with tqdm)
  python3-setuptools # the offline pip install test (--no-build-isolation)
  valgrind          # the memory-check stage
  g++               # the C++ header test
  binutils          # nm/readelf: the exported-symbol test
  libgfortran-12-dev # the static-link test (OpenBLAS's LAPACK needs it)
  doxygen           # the API reference and its 'api-docs' test
  clang             # the libFuzzer targets (fuzz stage)
  libclang-rt-dev   # libFuzzer and clang's sanitizer runtimes
  abigail-tools     # abidiff: the ABI gate
  dataset-fashion-mnist # Fashion-MNIST, examples/ensemble.c's default data
)
install_missing() {
  local missing=() p sudo=()
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$(basename "$0"): no dpkg-query (not Debian?): assuming these are installed: $*"
    return 0
  fi
  for p in "$@"; do
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      die "missing packages ${missing[*]}; run as root or install sudo"
    sudo=(sudo)
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
