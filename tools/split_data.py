#!/usr/bin/python3
"""Split the shared labeled corpus into the train / validation / test files that ship in data/.

Usage:
    tools/split_data.py [--input ../shared/data/labeled.jsonl] [--out data] [--seed 20261203]
                        [--restricted-out FILE]

What it does, deterministically for a given seed:
  1. Reads labeled.jsonl (one JSON object per line: text, label, source, lang, kind, license).
  2. Sets aside the rows whose licence does not allow shipping them: AlpacaEval (CC-BY-NC,
     non-commercial) and TensorTrust (no licence file). They never enter data/. With
     --restricted-out they are written to that file (outside the repository, e.g. in a build
     folder) so that `alkfw eval` can measure on them as an extra, never-trained-on test set.
  3. Caps the in-the-wild jailbreak source (long community prompts, 3.4 MB in all) at
     JAILBREAK_CAP rows chosen at random, so the shipped data stays small.
  4. Splits every (source, label) group on its own, 60% train / 20% validation / 20% test
     (stratified by source and label), after a seeded shuffle of the group.
  5. Writes data/train.jsonl, data/val.jsonl, data/test.jsonl (rows unchanged, in a seeded
     shuffled order) and prints a table of counts.

The bundled codebook is built from train + val; test is held out for `alkfw eval` and for the
bag-of-words baseline (tools/baseline_bow.py).
"""
import argparse
import collections
import json
import os
import random
import sys

RESTRICTED_SOURCES = {"alpacaeval", "tensortrust"}
JAILBREAK_SOURCE = "jailbreak_llms"
JAILBREAK_CAP = 500
FRACTIONS = (0.6, 0.2, 0.2)


def read_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if "text" not in row or "label" not in row:
                sys.exit(f"{path}:{n}: a row needs 'text' and 'label'")
            rows.append(row)
    return rows


def split_group(rows, rng):
    """Shuffles one (source, label) group and cuts it by FRACTIONS; every split gets at least
    one row when the group has three or more."""
    rows = list(rows)
    rng.shuffle(rows)
    n = len(rows)
    n_val = max(1, round(n * FRACTIONS[1])) if n >= 3 else 0
    n_test = max(1, round(n * FRACTIONS[2])) if n >= 3 else 0
    n_train = n - n_val - n_test
    return rows[:n_train], rows[n_train:n_train + n_val], rows[n_train + n_val:]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=os.path.join(here, "..", "..", "shared", "data",
                                                    "labeled.jsonl"))
    ap.add_argument("--out", default=os.path.join(here, "..", "data"))
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--restricted-out", default=None)
    args = ap.parse_args()

    rows = read_rows(args.input)
    rng = random.Random(args.seed)

    restricted = [r for r in rows if r.get("source") in RESTRICTED_SOURCES]
    shippable = [r for r in rows if r.get("source") not in RESTRICTED_SOURCES]

    jail = [r for r in shippable if r.get("source") == JAILBREAK_SOURCE]
    other = [r for r in shippable if r.get("source") != JAILBREAK_SOURCE]
    if len(jail) > JAILBREAK_CAP:
        jail = rng.sample(jail, JAILBREAK_CAP)
    shippable = other + jail

    groups = collections.defaultdict(list)
    for r in shippable:
        groups[(r.get("source", ""), r["label"])].append(r)

    train, val, test = [], [], []
    table = []
    for key in sorted(groups):
        a, b, c = split_group(groups[key], rng)
        train += a
        val += b
        test += c
        table.append((key, len(a), len(b), len(c)))
    for part in (train, val, test):
        rng.shuffle(part)

    os.makedirs(args.out, exist_ok=True)
    write_jsonl(os.path.join(args.out, "train.jsonl"), train)
    write_jsonl(os.path.join(args.out, "val.jsonl"), val)
    write_jsonl(os.path.join(args.out, "test.jsonl"), test)
    if args.restricted_out:
        write_jsonl(args.restricted_out, restricted)

    print(f"{'source':<18} {'label':<20} {'train':>6} {'val':>6} {'test':>6}")
    for (src, label), a, b, c in table:
        print(f"{src:<18} {label:<20} {a:>6} {b:>6} {c:>6}")
    print(f"{'total':<39} {len(train):>6} {len(val):>6} {len(test):>6}")
    print(f"restricted (not shipped): {len(restricted)} rows"
          + (f" -> {args.restricted_out}" if args.restricted_out else ""))


if __name__ == "__main__":
    main()
