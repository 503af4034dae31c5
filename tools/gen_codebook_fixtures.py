#!/usr/bin/python3
"""Writes the fixtures of tests/codebook (see tests/fixtures/codebook/README.md).

    /usr/bin/python3 tools/gen_codebook_fixtures.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/codebook. Needs python3-numpy and python3-sklearn (Debian).
Deterministic: a fixed numpy seed, so rerunning gives the same bytes.

- screen_codebook.safetensors: a small random but valid codebook (2 layers of width 24, k = 3,
  9 knots, directions injection and jailbreak, smoothing window 4).
- screen_cases.safetensors: activations of several texts and the expected screening results,
  computed by tools/ref_screen.py (numpy, independent of the C code), for the codebook's own
  window, for smoothing off, and for last-token mode.
- metrics_cases.safetensors: scores with ties and labels, with sklearn's ROC AUC and ROC curve
  and numpy's thresholds and recalls at fixed false positive rates.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_screen  # noqa: E402


def fritsch_carlson(x, F):
    """Monotone slopes at the knots (three-point means, then the radius-3 limiter)."""
    d = np.diff(F) / np.diff(x)
    m = np.empty_like(F)
    m[0], m[-1] = d[0], d[-1]
    m[1:-1] = (d[:-1] + d[1:]) / 2
    for j in range(len(d)):
        a, b = m[j] / d[j], m[j + 1] / d[j]
        r = a * a + b * b
        if r > 9:
            tau = 3 / np.sqrt(r)
            m[j], m[j + 1] = tau * a * d[j], tau * b * d[j]
    return m


def random_spline(rng, K, center, spread):
    x = np.sort(center + spread * rng.standard_normal(K))
    x = x + np.arange(K) * 1e-3  # keep them apart
    F = np.sort(rng.uniform(0.02, 0.98, K))
    F = F + np.arange(K) * 1e-4
    m = fritsch_carlson(x.astype(np.float32).astype(np.float64),
                        F.astype(np.float32).astype(np.float64))
    return x, F, m


def make_codebook(rng, path):
    n_l, hidden, k, K = 2, 24, 3, 9
    directions = ["injection", "jailbreak"]
    D = n_l * hidden
    layers = np.array([1, 3], dtype=np.int32)
    mean = rng.standard_normal((n_l, hidden)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, n_l).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((D, k)))
    basis = q.T.astype(np.float32)
    knots = np.empty((k + 1, K), np.float32)
    cdf = np.empty((k + 1, K), np.float32)
    slope = np.empty((k + 1, K), np.float32)
    for i in range(k):
        knots[i], cdf[i], slope[i] = random_spline(rng, K, 0.0, 1.5)
    knots[k], cdf[k], slope[k] = random_spline(rng, K, 1.0, 0.6)
    w = rng.standard_normal((len(directions), k)).astype(np.float32)
    b = rng.standard_normal(len(directions)).astype(np.float32)
    alpha = np.array([1.0, 0.8, 1.0], np.float32)
    meta = [("format", "alkfw-codebook"), ("version", "1"),
            ("directions", json.dumps(directions, separators=(",", ":"))),
            ("smoothing_window", "4"), ("threshold_suspicious", "0.62"),
            ("threshold_dangerous", "0.68"), ("aggregation", "mean"),
            ("model_id", "fixture"), ("model_revision", "none"), ("model_fingerprint", ""),
            ("metrics", "{}"), ("training_data", "{}"),
            ("created_by", "tools/gen_codebook_fixtures.py")]
    ref_screen.write_safetensors(path, [
        ("layers", layers), ("norm.mean", mean), ("norm.scale", scale), ("basis", basis),
        ("spline.knots", knots), ("spline.cdf", cdf), ("spline.slope", slope),
        ("direction.weight", w), ("direction.bias", b), ("direction.alpha", alpha)], meta)
    return ref_screen.Codebook.load(path)


def make_cases(rng, cb, path):
    lengths = [1, 2, 5, 13, 40]
    tensors = []
    for c, T in enumerate(lengths):
        states = (cb.mean[:, None, :] + cb.scale[:, None, None]
                  * rng.standard_normal((cb.mean.shape[0], T, cb.mean.shape[1])))
        if T >= 5:
            states[:, 2, :] *= 40.0   # far outside the knots: exercises both tails
            states[:, 3, :] *= -40.0
        states = states.astype(np.float32)
        tensors.append((f"case{c}.states", states))
        for mode, kw in (("win", {}), ("off", {"window": 0}), ("last", {"last_token": True})):
            r = ref_screen.screen(cb, states, **kw)
            if mode == "win":
                tensors.append((f"case{c}.features", r["features"]))
            tensors += [(f"case{c}.{mode}.p", r["p"]),
                        (f"case{c}.{mode}.mean", r["mean"]),
                        (f"case{c}.{mode}.max", r["max"]),
                        (f"case{c}.{mode}.argmax", r["argmax"].astype(np.int64)),
                        (f"case{c}.{mode}.score", np.array([r["score"]])),
                        (f"case{c}.{mode}.level", np.array([r["level"]], np.int32))]
    ref_screen.write_safetensors(path, tensors, [("n_cases", str(len(lengths)))])


def make_metrics(rng, path):
    from sklearn.metrics import roc_auc_score, roc_curve

    n = 300
    labels = (rng.uniform(size=n) < 0.3).astype(np.int32)
    scores = np.round(rng.uniform(size=n) * 0.6 + labels * 0.3, 2)  # rounding makes ties
    auc = roc_auc_score(labels, scores)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    targets = np.array([0.0, 0.01, 0.05, 0.1, 0.5])
    neg = np.sort(scores[labels == 0])[::-1]
    thr_at, rec_at = [], []
    for a in targets:
        i = int(np.floor(a * len(neg) + 1e-9))
        t = neg[i] if i < len(neg) else -np.inf
        thr_at.append(t)
        rec_at.append(np.mean(scores[labels == 1] > t))
    ref_screen.write_safetensors(path, [
        ("scores", scores.astype(np.float64)), ("labels", labels), ("auc", np.array([auc])),
        ("roc.fpr", fpr.astype(np.float64)), ("roc.tpr", tpr.astype(np.float64)),
        ("roc.thresholds", thr.astype(np.float64)), ("targets", targets),
        ("threshold_at", np.array(thr_at)), ("recall_at", np.array(rec_at))])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "codebook")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261203)
    cb = make_codebook(rng, os.path.join(out, "screen_codebook.safetensors"))
    make_cases(rng, cb, os.path.join(out, "screen_cases.safetensors"))
    make_metrics(rng, os.path.join(out, "metrics_cases.safetensors"))


if __name__ == "__main__":
    main()
