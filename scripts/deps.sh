#!/usr/bin/env bash
# Installs every Debian package BFCN needs to build, test, run the demo and benchmark: the list
# below is the whole of it (scripts/check_deps.py proves after each configure that every file the
# build resolves comes from it). Prints one line per step; apt's output goes to a log file whose
# tail is printed on failure. Skips apt entirely when everything is installed. Needs root (or sudo).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libeigen3-dev catch2 nlohmann-json3-dev libhdf5-dev libopencv-dev libpng-dev zlib1g-dev
  libdnnl-dev ocl-icd-opencl-dev
  libopenmpi-dev openmpi-bin
  python3 python3-torch python3-torchvision python3-numpy python3-pil python3-h5py
  dataset-fashion-mnist
  clang-format clang-14 libclang-rt-14-dev
  g++-aarch64-linux-gnu qemu-user
)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
LOG=${BFCN_DEPS_LOG:-/tmp/bfcn-deps.log}
: >"$LOG"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
step() {  # step <message> <command...>: one line, output to the log, its tail on failure
  local msg=$1 t0=$SECONDS
  shift
  printf 'deps: %s ... ' "$msg"
  if "$@" >>"$LOG" 2>&1; then
    echo "done ($((SECONDS - t0)) s)"
  else
    echo "FAILED"
    echo "deps: last lines of $LOG:" >&2
    tail -n 25 "$LOG" >&2
    exit 1
  fi
}
step "apt-get update" $SUDO apt-get update
step "installing ${#missing[@]} packages (${missing[*]}; log: $LOG)" \
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
