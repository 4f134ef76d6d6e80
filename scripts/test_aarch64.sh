#!/usr/bin/env bash
# The portable runtime: the runtime-only build (kernels/ + core/ + runtime/ + C API) cross
# compiled for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu
# (cmake/toolchains/aarch64-linux-gnu.cmake) and its tests run under qemu-aarch64 (qemu-user)
# through CMAKE_CROSSCOMPILING_EMULATOR. The x86 ISA kernels are left out there, so this runs the
# reference kernels; the AVX2/AVX-512 tests report themselves skipped. docs/deploy.md.
# Usage: scripts/test_aarch64.sh [BUILD_DIR]  (default build-aarch64; JOBS=N for the build)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUILD=${1:-build-aarch64}
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  if ! command -v "$tool" >/dev/null; then
    echo "test_aarch64: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user," \
         "or scripts/deps.sh)" >&2
    exit 1
  fi
done
t0=$SECONDS
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
      -DCMAKE_BUILD_TYPE=Release -DBFCN_WERROR=ON -DBFCN_RUNTIME_ONLY=ON ${BFCN_AARCH64_CMAKE_ARGS:-} \
      >/dev/null
cmake --build "$BUILD" -j "$JOBS"
t_build=$((SECONDS - t0))
# The tests must really be ARM code run by qemu, not host binaries.
if ! od -An -tx1 -j18 -N2 "$BUILD/test_runtime_only" | grep -q "b7 00"; then
  echo "test_aarch64: $BUILD/test_runtime_only is not an aarch64 executable (ELF e_machine)" >&2
  exit 1
fi
(cd "$BUILD" && OMP_NUM_THREADS=2 ctest --output-on-failure -j "$JOBS" --timeout 900)
echo "test_aarch64: build ${t_build} s, tests $((SECONDS - t0 - t_build)) s under qemu-aarch64"
