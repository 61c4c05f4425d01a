#!/usr/bin/env bash
# Install everything fqt needs on a fresh Debian machine (as root) and run the main job
# on the embedded default, which needs no board.
#   bash setup.sh                 install, build, run the main job
#   bash setup.sh --install-only  install and build only (test.sh uses this)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV=${FQT_VENV:-$ROOT/.venv}

APT_PACKAGES=(
  python3 python3-venv python3-pip git cmake ninja-build gcc g++ make
  gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
  qemu-system-arm device-tree-compiler valgrind clang libclang-rt-14-dev
)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "== apt: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== python: creating $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.fqt-installed" want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== python: installing fqt with its test and reference extras"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e ".[dev,ref]"
    echo "$want" >"$stamp"
  fi
}

build_host() {
  if [ -f CMakeLists.txt ]; then
    echo "== cmake: host build of the C engine (build/host)"
    cmake -S . -B build/host -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/host >/dev/null
    # The package's copy of libfqt.so and fqt_host_device (fqt/resources.py), which an
    # installed fqt, or a wheel built from here, uses.
    cmake --install build/host --component fqt_python --prefix scripts/fqt/_native >/dev/null
  fi
}

install_apt
install_python
build_host
if [ "${1:-}" != "--install-only" ]; then
  echo "== main job: fqt demo"
  "$VENV/bin/fqt" demo
fi
