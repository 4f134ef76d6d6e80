#!/usr/bin/env bash
# The main job: build, then run the end-to-end demo on generated default data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
build/bfcn --version
