#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang + ASan/UBSan) and runs each for a bounded time on
# a scratch copy of its seed corpus (tests/fuzz/corpus/<target>: seeds plus every past crash as a
# regression input). A crash, leak, timeout or allocation over the limit fails the run, and the
# input is saved in the build folder with the line to add it to the corpus.
#   scripts/fuzz.sh [seconds per target, default 60]     (FUZZ_JOBS: targets run at once, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-60}
JOBS=${FUZZ_JOBS:-2}
B=build-fuzz
TARGETS=(bfcn_model config image)
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
      -DCMAKE_CXX_COMPILER=clang++-14 -DBFCN_FUZZ=ON -DBFCN_BUILD_TESTS=OFF -DBFCN_BUILD_BENCH=OFF \
      >/dev/null
cmake --build "$B" -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}" >"$B/build.log" 2>&1 ||
  { tail -n 30 "$B/build.log"; exit 1; }

run_one() {  # run_one <target>: prints "<target> <runs> <status>"
  local t=$1 work="$B/fuzz-$1"
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  # -malloc_limit_mb: any single allocation above 1 GiB is a bug (sizes are bounded before use).
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
     OMP_NUM_THREADS=1 "$B/fuzz_$t" -max_total_time="$SECONDS_PER" -timeout=20 -rss_limit_mb=3072 \
     -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
     "$work/corpus" >"$work/log" 2>&1; then
    echo "$t $(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1) ok"
  else
    echo "$t $(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1) FAILED"
  fi
}
export -f run_one
export B SECONDS_PER
echo "== fuzzing ${TARGETS[*]}: ${SECONDS_PER} s each, $JOBS at a time (clang, ASan/UBSan)"
results=$(printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}')
fail=0
while read -r t runs status; do
  echo "fuzz_$t: ${runs:-0} inputs executed, $status"
  if [ "$status" != ok ]; then
    fail=1
    grep -m1 -A12 -E "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|deadly signal" \
      "$B/fuzz-$t/log" || tail -n 20 "$B/fuzz-$t/log"
    for a in "$B/fuzz-$t"/artifacts/*; do
      [ -e "$a" ] && echo "  reproduce: $B/fuzz_$t $a ; keep it: cp $a tests/fuzz/corpus/$t/"
    done
  fi
done <<<"$results"
exit $fail
