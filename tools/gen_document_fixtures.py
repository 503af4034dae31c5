#!/usr/bin/env python3
"""Writes the fixtures of the long-document tests into tests/fixtures/document/ from
../shared/data/labeled.jsonl (Python standard library only; deterministic):

  (and, in the build folder given as the second argument, default /tmp)
  train.jsonl      BIPIA benign documents (label benign) and BIPIA indirect injections (label
                   indirect_injection), every row but the held-out ones, for `alkfw build`
  held_docs.jsonl  (in the build folder) the held-out benign BIPIA documents, from which
                   gen_document_fixtures.sh keeps those the built codebook calls CLEAR on their
                   own, joined by blank lines, as benign_docs.txt (a long benign text)
  injections.txt   held-out BIPIA indirect injections, one per line

The codebook is then built by tools/gen_document_fixtures.sh with alkfw build.
"""
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared")
work = sys.argv[2] if len(sys.argv) > 2 else "/tmp"
out = os.path.join(root, "tests", "fixtures", "document")
rows = [json.loads(l) for l in open(os.path.join(shared, "data", "labeled.jsonl"), encoding="utf-8")]
docs = [r["text"] for r in rows if r.get("source") == "bipia" and r["label"] == "benign"]
inj = [r["text"] for r in rows if r.get("source") == "bipia" and r["label"] == "indirect_injection"]

# every 10th row is held out for the tests
held_docs = [d for i, d in enumerate(docs) if i % 10 == 0]
held_inj = [t for i, t in enumerate(inj) if i % 10 == 0 and "\n" not in t]
with open(os.path.join(work, "train.jsonl"), "w", encoding="utf-8") as f:
    for i, d in enumerate(docs):
        if i % 10:
            f.write(json.dumps({"text": d, "label": "benign", "source": "bipia"}) + "\n")
    for i, t in enumerate(inj):
        if i % 10:
            f.write(json.dumps({"text": t, "label": "indirect_injection", "source": "bipia"}) + "\n")
with open(os.path.join(work, "held_docs.jsonl"), "w", encoding="utf-8") as f:
    for d in held_docs:
        f.write(json.dumps({"text": d}) + "\n")
with open(os.path.join(out, "injections.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(held_inj[:8]) + "\n")
print(len(docs), len(inj), "->", len(held_docs), "held-out documents,", len(held_inj[:8]),
      "held-out injections")
