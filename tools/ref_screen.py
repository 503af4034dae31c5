#!/usr/bin/python3
"""Independent reference of the codebook screening math (DESIGN.md section 4, "Exact evaluation").

Written from the design text alone, with numpy only, vectorized over tokens, so that it shares
no code and no loop structure with the C implementation in src/codebook/score.c. The C tests
compare against fixtures this module produced (tools/gen_codebook_fixtures.py).

Usage as a program:
    /usr/bin/python3 tools/ref_screen.py CODEBOOK.safetensors STATES.safetensors [--window N]
        [--last-token]
STATES.safetensors holds one F32 tensor "states" of shape [n_layers, T, hidden] in the
codebook's layer order. Prints the per-direction means, maxima, argmax, score and level as JSON.

Tail policy (shared with the C code, documented in docs/codebook.md): F and 1 - F are each kept
in [DBL_MIN, 1 - 2**-53]; in the upper exponential tail 1 - F is computed directly.
"""
import json
import struct
import sys

import numpy as np

TINY = np.finfo(np.float64).tiny  # DBL_MIN
ONE_MINUS = 1.0 - 2.0**-53
CLAMP = 1e-6

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


# --------------------------------------------------------------------------------------------
# safetensors (just enough to read and write fixtures)
# --------------------------------------------------------------------------------------------


def read_safetensors(path):
    """Returns (tensors: dict name -> ndarray, metadata: dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors (list of (name, ndarray) in order) with metadata (list of (key, value))."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
             np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}
    header = {}
    if metadata:
        header["__metadata__"] = {k: v for k, v in metadata}
    offset = 0
    blobs = []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# --------------------------------------------------------------------------------------------
# the math
# --------------------------------------------------------------------------------------------


class Codebook:
    """The fields of a codebook file as float64 arrays."""

    def __init__(self, tensors, meta):
        self.layers = tensors["layers"].astype(np.int64)
        self.mean = tensors["norm.mean"].astype(np.float64)
        self.scale = tensors["norm.scale"].astype(np.float64)
        self.basis = tensors["basis"].astype(np.float64)
        self.knots = tensors["spline.knots"].astype(np.float64)
        self.cdf = tensors["spline.cdf"].astype(np.float64)
        self.slope = tensors["spline.slope"].astype(np.float64)
        self.w = tensors["direction.weight"].astype(np.float64)
        self.b = tensors["direction.bias"].astype(np.float64)
        self.alpha = tensors["direction.alpha"].astype(np.float64)
        self.directions = json.loads(meta["directions"])
        self.window = int(meta["smoothing_window"])
        self.t_susp = float(meta["threshold_suspicious"])
        self.t_dang = float(meta["threshold_dangerous"])
        self.k = self.basis.shape[0]

    @staticmethod
    def load(path):
        return Codebook(*read_safetensors(path))


def spline_cdf(knots, cdf, slope, z):
    """F(z) and 1 - F(z) for an array z: Hermite inside, exponential tails outside."""
    z = np.asarray(z, dtype=np.float64)
    K = len(knots)
    j = np.clip(np.searchsorted(knots, z, side="right") - 1, 0, K - 2)
    xa, xb = knots[j], knots[j + 1]
    h = xb - xa
    t = (z - xa) / h
    f_in = ((2 * t**3 - 3 * t**2 + 1) * cdf[j] + (t**3 - 2 * t**2 + t) * h * slope[j]
            + (-2 * t**3 + 3 * t**2) * cdf[j + 1] + (t**3 - t**2) * h * slope[j + 1])
    with np.errstate(over="ignore", under="ignore"):
        f_lo = cdf[0] * np.exp(slope[0] / cdf[0] * (z - knots[0]))
        q_hi = (1 - cdf[-1]) * np.exp(-slope[-1] / (1 - cdf[-1]) * (z - knots[-1]))
    below, above = z < knots[0], z > knots[-1]
    f = np.where(below, f_lo, np.where(above, 1 - q_hi, f_in))
    q = np.where(above, q_hi, 1 - f)
    return np.clip(f, TINY, ONE_MINUS), np.clip(q, TINY, ONE_MINUS)


def logit(p):
    p = np.clip(p, CLAMP, 1 - CLAMP)
    return np.log(p / (1 - p))


def token_features(cb, states):
    """Unsmoothed features [T, k+1] (phi_1..phi_k, anomaly value) of states [n_l, T, hidden]."""
    n_l, T, hidden = states.shape
    s = states.astype(np.float64)
    a = (s - cb.mean[:, None, :]) / cb.scale[:, None, None]      # per-layer standardization
    a = np.transpose(a, (1, 0, 2)).reshape(T, n_l * hidden)       # concat_l
    z = a @ cb.basis.T                                            # [T, k]
    k = cb.k
    x = np.empty_like(z)
    q = np.empty_like(z)
    for i in range(k):
        x[:, i], q[:, i] = spline_cdf(cb.knots[i], cb.cdf[i], cb.slope[i], z[:, i])
    S = x.sum(axis=1)
    f = np.concatenate([(S / k)[:, None], x[:, : k - 1] / S[:, None]], axis=1)
    phi = logit(f)
    n = np.mean(-np.log(2 * np.minimum(x, q)), axis=1)
    anom, _ = spline_cdf(cb.knots[k], cb.cdf[k], cb.slope[k], n)
    return np.concatenate([phi, anom[:, None]], axis=1), z


def trailing_mean(v, w):
    """Mean of rows max(0, t-w+1)..t of v [T, ...] for each t: the window's rows added oldest
    first (lagged copies of v, zero before the text starts), divided by the rows present."""
    w = max(int(w), 1)
    T = v.shape[0]
    total = np.zeros_like(v)
    for lag in range(min(w, T) - 1, -1, -1):
        total[lag:] += v[: T - lag]
    count = np.minimum(np.arange(T) + 1, w)
    return total / count.reshape((T,) + (1,) * (v.ndim - 1))


def screen(cb, states, window=None, last_token=False):
    """The alarm of one text as a dict (p is [n_d + 1, T])."""
    feats, _ = token_features(cb, states)
    w = cb.window if window is None else window
    sm = trailing_mean(feats, w)
    phi_s, a_s = sm[:, : cb.k], sm[:, cb.k]
    logits = phi_s @ cb.w.T + cb.b                                 # [T, n_d]
    P = np.vstack([1 / (1 + np.exp(-logits.T)), a_s[None, :]])    # [n_d + 1, T]
    sel = P[:, -1:] if last_token else P
    off = P.shape[1] - 1 if last_token else 0
    m = sel.mean(axis=1)
    mx = sel.max(axis=1)
    arg = sel.argmax(axis=1) + off
    score = float(np.max(cb.alpha * m))
    level = 2 if score > cb.t_dang else 1 if score > cb.t_susp else 0
    return {"features": feats, "p": P, "mean": m, "max": mx, "argmax": arg, "score": score,
            "level": level}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    window = None
    if "--window" in argv:
        window = int(argv[argv.index("--window") + 1])
        args.remove(str(window))
    cb = Codebook.load(args[0])
    states = read_safetensors(args[1])[0]["states"]
    r = screen(cb, states, window, "--last-token" in argv)
    names = cb.directions + ["anomaly"]
    print(json.dumps({
        "score": r["score"], "level": ["CLEAR", "SUSPICIOUS", "DANGEROUS"][r["level"]],
        "directions": [{"name": n, "mean": float(r["mean"][d]), "max": float(r["max"][d]),
                        "max_position": int(r["argmax"][d])} for d, n in enumerate(names)],
    }, indent=2))


if __name__ == "__main__":
    main(sys.argv)
