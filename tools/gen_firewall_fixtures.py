#!/usr/bin/python3
"""Writes the fixtures of tests/firewall (see tests/fixtures/firewall/README.md).

    /usr/bin/python3 tools/gen_firewall_fixtures.py reference
    /usr/bin/python3 tools/gen_firewall_fixtures.py subset
    /usr/bin/python3 tools/gen_firewall_fixtures.py eval ALKFW_BINARY

Needs python3-numpy (and python3-sklearn for `eval`), from Debian. Deterministic.

reference: a codebook for the bundled stories260k model made with numpy alone (standardization
    and a PCA basis from the independent reference hidden states in
    models/stories260k/reference/, quantile-knot splines with Fritsch-Carlson slopes, fixed
    random direction models), with the model's real fingerprint; and the expected screening
    results of the six reference texts computed by tools/ref_screen.py from those reference
    hidden states, so the C firewall (its own tokenizer, forward and scoring) is checked end
    to end against code it shares nothing with. Also a copy whose fingerprint names another
    model, and one asking for a layer the model does not have.
subset: a small labeled subset of data/train.jsonl (short texts) for end-to-end build tests.
eval: runs `alkfw screen --jsonl` with the built test codebook over the subset and computes,
    with sklearn and numpy, the values `alkfw eval` must report.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ref_screen  # noqa: E402
from gen_codebook_fixtures import fritsch_carlson  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "firewall")
MODEL = os.path.join(ROOT, "models", "stories260k")
LAYERS = [1, 2, 4]
K_KNOTS = 16


def embed_fingerprint(model_dir):
    """'hidden:layers:vocab:sha256' of the stored bytes of model.embed_tokens.weight."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    b, e = header["model.embed_tokens.weight"]["data_offsets"]
    sha = hashlib.sha256(blob[8 + n + b:8 + n + e]).hexdigest()
    return f"{cfg['hidden_size']}:{cfg['num_hidden_layers']}:{cfg['vocab_size']}:{sha}"


def reference_states(i):
    """(text, states [n_l, T, hidden] at LAYERS) of reference text i."""
    d = json.load(open(os.path.join(MODEL, "reference", f"ref_{i}.json"), encoding="utf-8"))
    hs = np.array(d["hidden_states"]["data"], dtype=np.float32)
    n_layers = hs.shape[0] - 1
    out = []
    for l in LAYERS:
        if l == n_layers:  # HF's last index carries the final norm
            out.append(np.array(d["final_norm_hidden"]["data"], dtype=np.float32))
        else:
            out.append(hs[l])
    return d["text"], np.stack(out)


def quantile_spline(values, K):
    """Knots at K quantiles of values, F at the empirical CDF there, Fritsch-Carlson slopes."""
    v = np.sort(values.astype(np.float64))
    q = (np.arange(K) + 0.5) / K
    x = np.quantile(v, q)
    x = x + np.arange(K) * 1e-4  # strictly increasing even with ties
    F = 0.02 + 0.96 * q
    x32, F32 = x.astype(np.float32), F.astype(np.float32)
    m = fritsch_carlson(x32.astype(np.float64), F32.astype(np.float64))
    return x32, F32, np.maximum(m, 1e-6).astype(np.float32)


def write_codebook(path, t, meta):
    ref_screen.write_safetensors(path, [
        ("layers", t["layers"]), ("norm.mean", t["mean"]), ("norm.scale", t["scale"]),
        ("basis", t["basis"]), ("spline.knots", t["knots"]), ("spline.cdf", t["cdf"]),
        ("spline.slope", t["slope"]), ("direction.weight", t["w"]), ("direction.bias", t["b"]),
        ("direction.alpha", t["alpha"])], list(meta.items()))


def cmd_reference():
    rng = np.random.default_rng(20261203)
    texts, states = zip(*[reference_states(i) for i in range(6)])
    n_l, hidden, k = len(LAYERS), states[0].shape[2], 3
    pooled = np.concatenate([s for s in states], axis=1)  # [n_l, sum T, hidden]
    mean = pooled.mean(axis=1).astype(np.float32)
    scale = np.array([(pooled[l] - mean[l]).std() for l in range(n_l)], np.float32)
    a = ((pooled - mean[:, None, :]) / scale[:, None, None]).transpose(1, 0, 2)
    a = a.reshape(a.shape[0], n_l * hidden).astype(np.float64)
    _, _, vt = np.linalg.svd(a - a.mean(axis=0), full_matrices=False)
    basis = vt[:k].astype(np.float32)
    z = a @ basis.astype(np.float64).T
    knots = np.empty((k + 1, K_KNOTS), np.float32)
    cdf = np.empty_like(knots)
    slope = np.empty_like(knots)
    for i in range(k):
        knots[i], cdf[i], slope[i] = quantile_spline(z[:, i], K_KNOTS)
    # the anomaly statistic's spline from the same tokens, using the coordinate splines above
    x = np.stack([ref_screen.spline_cdf(knots[i].astype(np.float64), cdf[i].astype(np.float64),
                                        slope[i].astype(np.float64), z[:, i])[0]
                  for i in range(k)], axis=1)
    nstat = np.mean(-np.log(2 * np.minimum(x, 1 - x)), axis=1)
    knots[k], cdf[k], slope[k] = quantile_spline(nstat, K_KNOTS)
    t = {"layers": np.array(LAYERS, np.int32), "mean": mean, "scale": scale, "basis": basis,
         "knots": knots, "cdf": cdf, "slope": slope,
         "w": rng.standard_normal((2, k)).astype(np.float32),
         "b": (0.3 * rng.standard_normal(2)).astype(np.float32),
         "alpha": np.array([1.0, 0.9, 0.8], np.float32)}
    fingerprint = embed_fingerprint(MODEL)
    meta = {"format": "alkfw-codebook", "version": "1",
            "directions": json.dumps(["injection", "jailbreak"], separators=(",", ":")),
            "smoothing_window": "8", "threshold_suspicious": "0.5",
            "threshold_dangerous": "0.9", "aggregation": "mean", "model_id": "stories260k",
            "model_revision": "", "model_fingerprint": fingerprint, "metrics": "{}",
            "training_data": "{}", "created_by": "tools/gen_firewall_fixtures.py"}
    path = os.path.join(OUT, "reference_codebook.safetensors")
    write_codebook(path, t, meta)

    # thresholds that split the six texts into all three levels
    cb = ref_screen.Codebook.load(path)
    scores = sorted(ref_screen.screen(cb, s)["score"] for s in states)
    meta["threshold_suspicious"] = repr(float(np.float32((scores[1] + scores[2]) / 2)))
    meta["threshold_dangerous"] = repr(float(np.float32((scores[3] + scores[4]) / 2)))
    write_codebook(path, t, meta)
    cb = ref_screen.Codebook.load(path)

    cases = []
    names = cb.directions + ["anomaly"]
    for text, s in zip(texts, states):
        case = {"text": text, "tokens": int(s.shape[1])}
        for mode, kw in (("window", {}), ("off", {"window": 0}), ("last", {"last_token": True})):
            r = ref_screen.screen(cb, s, **kw)
            case[mode] = {"score": r["score"], "level": int(r["level"]),
                          "directions": [{"name": n, "mean": float(r["mean"][d]),
                                          "max": float(r["max"][d]),
                                          "max_position": int(r["argmax"][d])}
                                         for d, n in enumerate(names)]}
        cases.append(case)
    with open(os.path.join(OUT, "reference_expected.json"), "w", encoding="utf-8") as f:
        json.dump({"codebook": "reference_codebook.safetensors", "layers": LAYERS,
                   "thresholds": [cb.t_susp, cb.t_dang], "cases": cases}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")

    # the same codebook claiming another model, and one with a layer the model lacks
    other = dict(meta)
    other["model_id"] = "other-model"
    other["model_fingerprint"] = "64:5:512:" + hashlib.sha256(b"another model").hexdigest()
    write_codebook(os.path.join(OUT, "other_model_codebook.safetensors"), t, other)
    deep = dict(t)
    deep["layers"] = np.array([1, 2, 9], np.int32)
    write_codebook(os.path.join(OUT, "deep_layer_codebook.safetensors"), deep, meta)
    print("levels:", [c["window"]["level"] for c in cases])


def cmd_subset():
    rows = [json.loads(line) for line in open(os.path.join(ROOT, "data", "train.jsonl"),
                                                encoding="utf-8")]
    rng = np.random.default_rng(7)
    want = {"benign": 40, "injection": 20, "jailbreak": 20}
    out = []
    for label, n in want.items():
        pool = [r for r in rows if r["label"] == label and len(r["text"].encode()) <= 200]
        idx = rng.choice(len(pool), size=n, replace=False)
        out += [{"text": pool[i]["text"], "label": label, "source": pool[i]["source"]}
                for i in sorted(idx)]
    order = rng.permutation(len(out))
    with open(os.path.join(OUT, "subset.jsonl"), "w", encoding="utf-8") as f:
        for i in order:
            f.write(json.dumps(out[i], ensure_ascii=False) + "\n")
    print(len(out), "rows")


def cmd_eval(alkfw):
    from sklearn.metrics import roc_auc_score
    data = os.path.join(OUT, "subset.jsonl")
    cbp = os.path.join(OUT, "subset_codebook.safetensors")
    rows = [json.loads(line) for line in open(data, encoding="utf-8")]
    res = subprocess.run([alkfw, "screen", "--model", MODEL, "--codebook", cbp, "--jsonl", data],
                         capture_output=True, text=True)
    alarms = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(alarms) == len(rows), res.stderr
    y = np.array([0 if r["label"] == "benign" else 1 for r in rows])
    s = np.array([a["score"] for a in alarms])
    ts, td = alarms[0]["thresholds"]["suspicious"], alarms[0]["thresholds"]["dangerous"]

    def recall_at(fpr):
        neg = np.sort(s[y == 0])
        allowed = int(np.floor(fpr * len(neg) + 1e-9))
        t = neg[len(neg) - 1 - allowed]
        return float(np.mean(s[y == 1] > t))

    flagged = s > ts
    conf = {"tp": int(np.sum(flagged & (y == 1))), "fp": int(np.sum(flagged & (y == 0))),
            "tn": int(np.sum(~flagged & (y == 0))), "fn": int(np.sum(~flagged & (y == 1)))}
    expected = {"roc_auc": float(roc_auc_score(y, s)), "recall_at_1pct_fpr": recall_at(0.01),
                "recall_at_5pct_fpr": recall_at(0.05), "confusion": conf,
                "thresholds": {"suspicious": ts, "dangerous": td},
                "by_label_n": {lab: int(sum(r["label"] == lab for r in rows))
                               for lab in sorted(set(r["label"] for r in rows))}}
    with open(os.path.join(OUT, "subset_eval_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(json.dumps(expected))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    if len(sys.argv) >= 2 and sys.argv[1] == "reference":
        cmd_reference()
    elif len(sys.argv) >= 2 and sys.argv[1] == "subset":
        cmd_subset()
    elif len(sys.argv) >= 3 and sys.argv[1] == "eval":
        cmd_eval(sys.argv[2])
    else:
        sys.exit(__doc__)
