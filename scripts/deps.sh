#!/usr/bin/env bash
# Installs every Debian package BFCN needs to build, test, run the demo and benchmark.
# Skips apt entirely when everything is already installed. Needs root (or sudo).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libeigen3-dev catch2 nlohmann-json3-dev libhdf5-dev libopencv-dev libpng-dev zlib1g-dev
  libdnnl-dev
  python3 python3-torch python3-torchvision python3-numpy python3-pil python3-h5py
  dataset-fashion-mnist
  clang-format
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
