#!/usr/bin/python3
"""Bag-of-words logistic-regression baseline on the shipped split (scikit-learn from Debian).

Usage:
    tools/baseline_bow.py [--data data] [--extra FILE.jsonl] [--out docs/baseline_bow.json]

The point of comparison for the activation firewall: a surface classifier that sees only the
words. It is trained and measured on exactly the split `alkfw build` / `alkfw eval` use:

  - fit:       data/train.jsonl (word 1-2 grams, TF-IDF, L2 logistic regression; C picked
               from {0.1, 1, 10} by ROC AUC on validation),
  - calibrate: data/val.jsonl: thresholds for 5% and 1% benign false-positive rate, the same
               rule `alkfw build` uses (the smallest threshold with at most that fraction of
               validation benign scores strictly above it),
  - measure:   data/test.jsonl (held out): ROC AUC, recall at 1% and 5% FPR (thresholds taken
               on the test set's own benign scores, as `alkfw eval` does), and precision /
               recall / F1 at the validation thresholds.

`benign` is the negative class, every other label positive. --extra measures the same model
on a further file (e.g. the AlpacaEval + TensorTrust rows that are never shipped).
"""
import argparse
import json
import os
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def threshold_at_fpr(neg_scores, fpr):
    """The smallest threshold t among the negative scores such that the fraction of negatives
    strictly above t is at most fpr."""
    s = np.sort(np.asarray(neg_scores))
    n = len(s)
    allowed = int(np.floor(fpr * n + 1e-9))
    return float(s[n - 1 - allowed]) if allowed < n else float(s[0]) - 1.0


def recall_at_fpr(y, scores, fpr):
    t = threshold_at_fpr(scores[y == 0], fpr)
    return float(np.mean(scores[y == 1] > t))


def prf(y, flagged):
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    tn = int(np.sum(~flagged & (y == 0)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def measure(model, vec, rows, t_susp, t_dang):
    y = np.array([0 if r["label"] == "benign" else 1 for r in rows])
    s = model.predict_proba(vec.transform([r["text"] for r in rows]))[:, 1]
    out = {"n": len(rows), "n_positive": int(y.sum()), "n_negative": int((1 - y).sum())}
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, s))
        out["recall_at_1pct_fpr"] = recall_at_fpr(y, s, 0.01)
        out["recall_at_5pct_fpr"] = recall_at_fpr(y, s, 0.05)
    out["at_suspicious_threshold"] = prf(y, s > t_susp)
    out["at_dangerous_threshold"] = prf(y, s > t_dang)
    by_source = {}
    for src in sorted(set(r.get("source", "") for r in rows)):
        m = np.array([r.get("source", "") == src for r in rows])
        by_source[src] = {"n": int(m.sum()), "flagged": float(np.mean(s[m] > t_susp))}
    out["by_source_flagged_rate"] = by_source
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "data"))
    ap.add_argument("--extra", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    train = read_jsonl(os.path.join(args.data, "train.jsonl"))
    val = read_jsonl(os.path.join(args.data, "val.jsonl"))
    test = read_jsonl(os.path.join(args.data, "test.jsonl"))
    ytr = np.array([0 if r["label"] == "benign" else 1 for r in train])
    yva = np.array([0 if r["label"] == "benign" else 1 for r in val])

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    xtr = vec.fit_transform([r["text"] for r in train])
    xva = vec.transform([r["text"] for r in val])

    best = None
    for c in (0.1, 1.0, 10.0):
        m = LogisticRegression(C=c, max_iter=2000, solver="liblinear").fit(xtr, ytr)
        auc = roc_auc_score(yva, m.predict_proba(xva)[:, 1])
        print(f"C={c}: validation ROC AUC {auc:.4f}", file=sys.stderr)
        if best is None or auc > best[0]:
            best = (auc, c, m)
    _, c, model = best
    sva = model.predict_proba(xva)[:, 1]
    t_susp = threshold_at_fpr(sva[yva == 0], 0.05)
    t_dang = threshold_at_fpr(sva[yva == 0], 0.01)

    report = {
        "model": "tfidf word 1-2 grams (min_df 2) + L2 logistic regression (liblinear)",
        "C": c,
        "thresholds": {"suspicious": t_susp, "dangerous": t_dang},
        "validation_roc_auc": float(best[0]),
        "test": measure(model, vec, test, t_susp, t_dang),
    }
    if args.extra:
        report["extra"] = measure(model, vec, read_jsonl(args.extra), t_susp, t_dang)
        report["extra"]["file"] = os.path.basename(args.extra)
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
