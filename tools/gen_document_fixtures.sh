#!/bin/sh
# Makes tests/fixtures/document/: held-out texts (tools/gen_document_fixtures.py), a codebook
# for the bundled stories260k model with one direction, indirect_injection, fitted on the
# other BIPIA rows with alkfw build, and benign_docs.txt: the held-out benign documents that
# this codebook scores CLEAR on their own, joined by blank lines.
# Usage: tools/gen_document_fixtures.sh [ALKFW_BINARY]   (deterministic: fixed seed)
set -e
cd "$(dirname "$0")/.."
ALKFW=${1:-build/src/cli/alkfw}
WORK=$(mktemp -d)
OUT=tests/fixtures/document
python3 tools/gen_document_fixtures.py ../shared "$WORK"
"$ALKFW" build --model models/stories260k --data "$WORK/train.jsonl" --layers 1,2,4 --k 3 \
    --seed 5 --max-tokens 256 --threads 1 --quiet --out $OUT/injection_codebook.safetensors
"$ALKFW" screen --jsonl --threads 1 --codebook $OUT/injection_codebook.safetensors \
    "$WORK/held_docs.jsonl" >"$WORK/held_alarms.jsonl" || true
python3 - "$WORK" $OUT <<'PY'
import json, sys
work, out = sys.argv[1], sys.argv[2]
docs = [json.loads(l)["text"] for l in open(work + "/held_docs.jsonl", encoding="utf-8")]
alarms = [json.loads(l) for l in open(work + "/held_alarms.jsonl", encoding="utf-8")]
keep = [d for d, a in zip(docs, alarms) if a["level"] == "CLEAR"][:10]
with open(out + "/benign_docs.txt", "w", encoding="utf-8") as f:
    f.write("\n\n".join(keep))
print(len(keep), "benign documents kept,", sum(len(d.encode()) for d in keep), "bytes")
PY
rm -r "$WORK"
