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
- fit_cases.safetensors: labeled synthetic activations of 150 texts (2 layers of width 8) and
  what each fitting step should give, computed here with numpy (means, scales, eigenvectors
  of the Gram matrix, quantile knots, Fritsch-Carlson slopes) and scikit-learn's liblinear
  logistic regression, following docs/codebook.md.
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


FIT_K, FIT_KNOTS, FIT_WINDOW = 3, 12, 4


def fit_spline(values, K):
    """Knots at the (j + 1/2)/K quantiles (linear interpolation), CDF values p_j, FC slopes,
    everything rounded to float32 as the codebook stores it."""
    p = (np.arange(K) + 0.5) / K
    x = np.quantile(values, p, method="linear").astype(np.float32)
    assert np.all(np.diff(x) > 0), "ties in the synthetic data"
    F = p.astype(np.float32)
    m = fritsch_carlson(x.astype(np.float64), F.astype(np.float64)).astype(np.float32)
    return x, F, m


def make_fit(rng, path):
    from sklearn.linear_model import LogisticRegression

    n_l, hidden = 2, 8
    D = n_l * hidden
    layers = np.array([2, 5], np.int32)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    scales = np.linspace(3.0, 0.3, D)
    offset = rng.standard_normal(D) * 2.0
    shift = {0: 5.0 * q[:, 1], 1: -5.0 * q[:, 2]}  # injection, jailbreak: along high variance
    plan = [(-1, 0, 40), (0, 0, 20), (1, 0, 20), (-1, 1, 30), (0, 1, 15), (1, 1, 15)]
    acts, start, length, label, is_val = [], [], [], [], []
    pos = 0
    for lab, val, count in plan:
        for _ in range(count):
            T = int(rng.integers(3, 13))
            x = (rng.standard_normal((T, D)) * scales) @ q.T + offset
            if lab >= 0:
                x = x + shift[lab]
            acts.append(x.astype(np.float32))
            start.append(pos)
            length.append(T)
            label.append(lab)
            is_val.append(val)
            pos += T
    acts = np.concatenate(acts)
    start, length = np.array(start, np.int64), np.array(length, np.int64)
    label, is_val = np.array(label, np.int32), np.array(is_val, np.int32)
    tok_text = np.repeat(np.arange(len(start)), length)
    train = is_val[tok_text] == 0
    benign_train = train & (label[tok_text] == -1)

    # standardization: mean over training tokens, sigma_l the RMS of the centered layer
    a64 = acts.astype(np.float64)
    mu = a64[train].mean(axis=0).astype(np.float32)
    sig = np.empty(n_l, np.float32)
    for l in range(n_l):
        c = a64[train][:, l * hidden:(l + 1) * hidden] - mu[l * hidden:(l + 1) * hidden]
        sig[l] = np.sqrt(np.mean(c * c))
    std = (a64 - mu) / np.repeat(sig.astype(np.float64), hidden)

    # basis: top-k eigenvectors of the Gram matrix, largest component positive
    w, V = np.linalg.eigh(std[train].T @ std[train])
    basis = V[:, ::-1][:, :FIT_K].T.copy()
    for i in range(FIT_K):
        if basis[i, np.argmax(np.abs(basis[i]))] < 0:
            basis[i] = -basis[i]
    basis = basis.astype(np.float32)
    z = std @ basis.astype(np.float64).T

    knots = np.empty((FIT_K + 1, FIT_KNOTS), np.float32)
    cdf, slope = np.empty_like(knots), np.empty_like(knots)
    for i in range(FIT_K):
        knots[i], cdf[i], slope[i] = fit_spline(z[benign_train, i], FIT_KNOTS)
    xs = np.empty_like(z)
    qs = np.empty_like(z)
    for i in range(FIT_K):
        xs[:, i], qs[:, i] = ref_screen.spline_cdf(knots[i].astype(np.float64),
                                                   cdf[i].astype(np.float64),
                                                   slope[i].astype(np.float64), z[:, i])
    n_stat = np.mean(-np.log(2 * np.minimum(xs, qs)), axis=1)
    knots[FIT_K], cdf[FIT_K], slope[FIT_K] = fit_spline(n_stat[benign_train], FIT_KNOTS)

    # features through the reference screener, smoothed per text
    cbt = {"layers": layers, "norm.mean": mu.reshape(n_l, hidden), "norm.scale": sig,
           "basis": basis, "spline.knots": knots, "spline.cdf": cdf, "spline.slope": slope,
           "direction.weight": np.zeros((2, FIT_K), np.float32),
           "direction.bias": np.zeros(2, np.float32), "direction.alpha": np.ones(3, np.float32)}
    meta = {"directions": '["injection","jailbreak"]', "smoothing_window": str(FIT_WINDOW),
            "threshold_suspicious": "0.3", "threshold_dangerous": "0.7"}
    cb = ref_screen.Codebook(cbt, meta)
    sm = np.empty((len(acts), FIT_K + 1))
    for i in range(len(start)):
        st = acts[start[i]:start[i] + length[i]]
        states = st.reshape(length[i], n_l, hidden).transpose(1, 0, 2)
        f, _ = ref_screen.token_features(cb, states)
        sm[start[i]:start[i] + length[i]] = ref_screen.trailing_mean(f, FIT_WINDOW)

    # one balanced L2 logistic regression per direction (liblinear, bias regularized)
    W = np.empty((2, FIT_K), np.float32)
    B = np.empty(2, np.float32)
    for d in range(2):
        sel = train & ((label[tok_text] == d) | (label[tok_text] == -1))
        y = np.where(label[tok_text][sel] == d, 1, -1)
        n_pos, n_neg = np.sum(y == 1), np.sum(y == -1)
        l = len(y)
        lr = LogisticRegression(solver="liblinear", C=1.0, tol=1e-8, max_iter=10000,
                                intercept_scaling=1.0,
                                class_weight={1: l / (2 * n_pos), -1: l / (2 * n_neg)})
        lr.fit(sm[sel, :FIT_K], y)
        W[d] = lr.coef_[0]
        B[d] = lr.intercept_[0]
    cb.w, cb.b = W.astype(np.float64), B.astype(np.float64)

    # thresholds on benign validation texts: the (floor(a n) + 1)-th largest score
    scores = []
    for i in range(len(start)):
        if is_val[i] and label[i] == -1:
            st = acts[start[i]:start[i] + length[i]]
            r = ref_screen.screen(cb, st.reshape(length[i], n_l, hidden).transpose(1, 0, 2))
            scores.append(r["score"])
    neg = np.sort(scores)[::-1]
    thr = [neg[int(np.floor(a * len(neg) + 1e-9))] for a in (0.01, 0.05)]

    ref_screen.write_safetensors(path, [
        ("acts", acts), ("text_start", start), ("text_len", length), ("label", label),
        ("is_val", is_val), ("layers", layers), ("norm.mean", mu.reshape(n_l, hidden)),
        ("norm.scale", sig), ("basis", basis), ("spline.knots", knots), ("spline.cdf", cdf),
        ("spline.slope", slope), ("direction.weight", W), ("direction.bias", B),
        ("thresholds", np.array(thr))],
        [("k", str(FIT_K)), ("knots", str(FIT_KNOTS)), ("window", str(FIT_WINDOW))])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "codebook")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261203)
    cb = make_codebook(rng, os.path.join(out, "screen_codebook.safetensors"))
    make_cases(rng, cb, os.path.join(out, "screen_cases.safetensors"))
    make_metrics(rng, os.path.join(out, "metrics_cases.safetensors"))
    make_fit(rng, os.path.join(out, "fit_cases.safetensors"))


if __name__ == "__main__":
    main()
