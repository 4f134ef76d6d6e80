#!/usr/bin/env bash
# The test command: installs dependencies, builds Release with warnings as errors, runs every
# test with ctest, then the runtime-only build and its tests under each BFCN_ISA level the CPU
# supports, then builds the tests with ASan/UBSan and runs them again, then fuzzes the
# parsers of untrusted input (scripts/fuzz.sh).
# Exits non-zero on any failure.  Usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
SANITIZE=1
[ "${1:-}" = "--no-sanitize" ] && SANITIZE=0

scripts/deps.sh

if command -v clang-format >/dev/null; then
  echo "== clang-format check"
  git ls-files '*.cpp' '*.h' | xargs -r clang-format --dry-run -Werror
fi

echo "== Release build (warnings are errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBFCN_WERROR=ON >/dev/null
echo "== fresh-machine check (every file the build resolved comes from scripts/deps.sh's list)"
/usr/bin/python3 scripts/check_deps.py --build build
cmake --build build -j "$JOBS"
echo "== tests (Release)"
# A skipped test exits 77 (ctest: "Skipped") and appends "test | kind | reason" to $BFCN_SKIP_LOG;
# under CI=true only CPU-feature skips are allowed (a missing dependency fails the test).
export BFCN_SKIP_LOG="$PWD/build/skipped.log"
: >"$BFCN_SKIP_LOG"
(cd build && OMP_NUM_THREADS=2 ctest --output-on-failure -j "$JOBS" --timeout 900)

echo "== runtime-only build (docs/deploy.md: kernels/ + core/ + runtime/ + C API; Eigen, HDF5 and"
echo "   OpenCV disabled to prove they are not needed) and its tests"
cmake -S . -B build-runtime -DCMAKE_BUILD_TYPE=Release -DBFCN_WERROR=ON -DBFCN_RUNTIME_ONLY=ON \
      -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON -DCMAKE_DISABLE_FIND_PACKAGE_HDF5=ON \
      -DCMAKE_DISABLE_FIND_PACKAGE_OpenCV=ON >/dev/null
cmake --build build-runtime -j "$JOBS"
(cd build-runtime && OMP_NUM_THREADS=2 ctest --output-on-failure -j "$JOBS" --timeout 900)
echo "== the runtime-only tests again with each lower kernel level forced (BFCN_ISA); the run above"
echo "   is the CPU's best level, and a level the CPU lacks is reported skipped (forcing it is an error)"
isa_levels=(ref avx2 avx512 avx512vnni)
best_isa=$(build/bfcn --version | sed -n 's/.*best supported: \([a-z0-9]*\).*/\1/p')
[[ " ${isa_levels[*]} " == *" $best_isa "* ]] ||
  { echo "test.sh: bfcn --version names best level '$best_isa', not one of: ${isa_levels[*]}"; exit 1; }
below_best=1
for isa in "${isa_levels[@]}"; do
  if [ "$isa" = "$best_isa" ]; then
    below_best=0
  elif [ "$below_best" = 1 ]; then
    echo "-- BFCN_ISA=$isa"
    (cd build-runtime && BFCN_ISA=$isa OMP_NUM_THREADS=2 ctest --output-on-failure -j "$JOBS" \
       --timeout 900)
  else
    echo "-- BFCN_ISA=$isa: skipped, this CPU's best level is $best_isa"
    echo "runtime-only suite with BFCN_ISA=$isa | cpu feature | this CPU's best level is $best_isa" \
      >>"$BFCN_SKIP_LOG"
  fi
done
echo "== aarch64 cross build of the runtime (reference kernels) and its tests under qemu-aarch64"
echo "   (scripts/test_aarch64.sh, docs/deploy.md)"
JOBS=$JOBS scripts/test_aarch64.sh build-aarch64

if [ "$SANITIZE" = 1 ]; then
  echo "== ASan/UBSan build"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBFCN_WERROR=ON -DBFCN_SANITIZE=ON \
        -DBFCN_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$JOBS"
  echo "== tests (ASan/UBSan)"
  # The end-to-end script tests (the demo --quick, the README's real-data commands) run whole
  # training pipelines through the CLI; in the Release pass they take 1-2 min each, under ASan
  # 10+, so the ASan pass leaves them to the Release pass (the code they drive is covered here by
  # the unit and CLI tests).
  ASAN_EXCLUDE="scripts:demo_quick|scripts:readme_real_data"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     LSAN_OPTIONS=suppressions="$PWD/../scripts/lsan.supp" UBSAN_OPTIONS=print_stacktrace=1 \
     OMP_NUM_THREADS=2 BFCN_SANITIZED=1 \
     ctest --output-on-failure -j "$JOBS" --timeout 1800 -E "$ASAN_EXCLUDE")
fi
if [ "$SANITIZE" = 1 ]; then
  # libFuzzer (clang) on the .bfcn reader, the config parser and the image decoders, under
  # ASan/UBSan, FUZZ_SECONDS each; a crash fails the run and names the input to keep.
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
if [ -s "$BFCN_SKIP_LOG" ]; then
  echo "== skipped tests (test | kind | reason), Release and ASan runs:"
  sort -u "$BFCN_SKIP_LOG" | sed 's/^/   /'
else
  echo "== no test skipped"
fi
echo "== all tests passed"
