#!/bin/sh
# Rebuilds the bundled codebook models/stories260k/codebook.safetensors from the shipped split
# (data/train.jsonl for fitting, data/val.jsonl for thresholds and the validation report), with
# the settings chosen by validation (see docs/firewall.md, "The bundled codebook"). Takes well
# under a minute on 2 cores. Usage: tools/build_bundled_codebook.sh [ALKFW_BINARY]
set -e
cd "$(dirname "$0")/.."
ALKFW=${1:-build/src/cli/alkfw}
if [ ! -x "$ALKFW" ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target alkfw_cli
fi
"$ALKFW" build --model models/stories260k \
    --data data/train.jsonl --val-data data/val.jsonl \
    --layers 0,1,2,3,4,5 --k 64 --window 256 --knots 64 --C 10 --seed 20261203 \
    --max-tokens 256 \
    --out models/stories260k/codebook.safetensors
