# Sourced by scripts/test.sh and scripts/quickstart.sh (which define say
# and die first): install_missing PACKAGE... installs, with apt-get, the
# Debian packages of the list that are not installed yet, as root or
# through sudo; on a machine without dpkg it assumes they are there.
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
