#!/usr/bin/python3
"""Generate tiny random Llama-family models and their reference hidden states.

The models cover what the bundled stories260k does not: GQA ratios 1 and 3, MQA, untied
embeddings, Qwen2 q/k/v biases, Llama attention and MLP biases, F16 and BF16 weights, an
explicit head_dim different from hidden_size / num_attention_heads, sharded weights behind
model.safetensors.index.json, and odd sizes.

The reference forward below is written from Hugging Face transformers' semantics
(LlamaModel / MistralModel / Qwen2Model with output_hidden_states=True, eager attention),
without importing transformers:
  - weights are read back exactly as stored (F16/BF16 rounded) and used in float64;
  - RoPE follows transformers' default initialisation in float32:
    inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), angle = position * inv_freq,
    cos/sin in float32, rotate-half layout, then float64;
  - RMSNorm: x * rsqrt(mean(x^2) + eps) * weight;
  - attention: softmax(q k^T / sqrt(head_dim) + causal mask) v, kv heads repeated;
  - MLP: down(silu(gate(x)) * up(x));
  - hidden_states[0] = embeddings, [i] = residual after block i, [n_layers] = final norm.

Each model directory gets config.json, the weights, and expected.safetensors holding
input_ids (I32 [T]) and hidden.<i> (F32 [T, hidden]) for every index 0..n_layers.

Usage: /usr/bin/python3 tools/gen_model_fixtures.py [OUT_DIR]
       (default tests/fixtures/models; deterministic for the fixed seeds below)
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


# ---- safetensors writing (the format is simple enough to write by hand) ---------------------

def tensor_bytes(t, dtype):
    t = t.to(DTYPES[dtype]).contiguous()
    if dtype == "BF16":
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "F16":
        return t.numpy().astype("<f2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), written in the given order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


# ---- random weights --------------------------------------------------------------------------

def make_weights(cfg, gen):
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", H // nh)
    V, L = cfg["vocab_size"], cfg["num_hidden_layers"]
    qkv_bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    o_bias = cfg["model_type"] != "qwen2" and cfg.get("attention_bias", False)
    mlp_bias = cfg["model_type"] != "qwen2" and cfg.get("mlp_bias", False)

    def lin(o, i):
        return torch.randn(o, i, generator=gen, dtype=torch.float64) / np.sqrt(i)

    def vec(n, base=0.0, scale=0.1):
        return base + scale * torch.randn(n, generator=gen, dtype=torch.float64)

    w = {"model.embed_tokens.weight": torch.randn(V, H, generator=gen, dtype=torch.float64)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = vec(H, 1.0)
        w[p + "self_attn.q_proj.weight"] = lin(nh * hd, H)
        w[p + "self_attn.k_proj.weight"] = lin(nkv * hd, H)
        w[p + "self_attn.v_proj.weight"] = lin(nkv * hd, H)
        w[p + "self_attn.o_proj.weight"] = lin(H, nh * hd)
        if qkv_bias:
            w[p + "self_attn.q_proj.bias"] = vec(nh * hd, 0.0, 0.5)
            w[p + "self_attn.k_proj.bias"] = vec(nkv * hd, 0.0, 0.5)
            w[p + "self_attn.v_proj.bias"] = vec(nkv * hd, 0.0, 0.5)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = vec(H, 0.0, 0.5)
        w[p + "post_attention_layernorm.weight"] = vec(H, 1.0)
        w[p + "mlp.gate_proj.weight"] = lin(I, H)
        w[p + "mlp.up_proj.weight"] = lin(I, H)
        w[p + "mlp.down_proj.weight"] = lin(H, I)
        if mlp_bias:
            w[p + "mlp.gate_proj.bias"] = vec(I, 0.0, 0.5)
            w[p + "mlp.up_proj.bias"] = vec(I, 0.0, 0.5)
            w[p + "mlp.down_proj.bias"] = vec(H, 0.0, 0.5)
    w["model.norm.weight"] = vec(H, 1.0)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = lin(V, H)
    return w


# ---- the reference forward (HF semantics) ----------------------------------------------------

def rope_cos_sin(cfg, T):
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim", cfg["hidden_size"] // nh)
    theta = float(cfg.get("rope_theta", 10000.0))
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "linear":
        # transformers' _compute_linear_scaling_rope_parameters
        inv_freq = inv_freq / rs["factor"]
    elif rs and rs.get("rope_type", rs.get("type")) == "llama3":
        # transformers' _compute_llama3_parameters, float32 tensors throughout
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (
            high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + \
            smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    elif rs and rs.get("rope_type", rs.get("type")) not in (None, "default"):
        raise ValueError(f"rope_scaling {rs} not implemented here")
    pos = torch.arange(T, dtype=torch.int64).float()
    freqs = pos[:, None] * inv_freq[None, :]  # float32, as transformers does
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().double(), emb.sin().double()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def reference_forward(cfg, w, ids, dtype=torch.float64):
    """Returns [hidden_states[0..n_layers]] as float64 tensors [T, H] (HF convention)."""
    H = cfg["hidden_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", H // nh)
    L = cfg["num_hidden_layers"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    W = {k: v.to(dtype) for k, v in w.items()}
    cos, sin = rope_cos_sin(cfg, T)
    cos, sin = cos.to(dtype), sin.to(dtype)
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)

    def linear(x, name):
        y = x @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    states = [x]
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = linear(h, p + "self_attn.q_proj").view(T, nh, hd).transpose(0, 1)
        k = linear(h, p + "self_attn.k_proj").view(T, nkv, hd).transpose(0, 1)
        v = linear(h, p + "self_attn.v_proj").view(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        att = (q @ k.transpose(1, 2)) * (hd ** -0.5) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, nh * hd)
        x = x + linear(o, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = linear(h, p + "mlp.gate_proj")
        u = linear(h, p + "mlp.up_proj")
        x = x + linear(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
        states.append(x)
    states[-1] = rms_norm(x, W["model.norm.weight"], eps)
    return states


# ---- the fixture models ----------------------------------------------------------------------

def base_config(arch, model_type, **kw):
    cfg = {"architectures": [arch], "model_type": model_type, "hidden_act": "silu",
           "rope_scaling": None, "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


MODELS = [
    # name, config, weight dtype, shards, seed, T
    ("llama_gqa1_f32", base_config(
        "LlamaForCausalLM", "llama", hidden_size=48, intermediate_size=80,
        num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=3, vocab_size=97,
        max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True), "F32", 1, 1, 21),
    ("llama_gqa3_bf16_untied", base_config(
        "LlamaForCausalLM", "llama", hidden_size=72, intermediate_size=100,
        num_attention_heads=6, num_key_value_heads=2, num_hidden_layers=3, vocab_size=101,
        max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=False), "BF16", 1, 2, 33),
    ("llama_mqa_f16_headdim", base_config(
        "LlamaForCausalLM", "llama", hidden_size=56, intermediate_size=37,
        num_attention_heads=4, num_key_value_heads=1, head_dim=20, num_hidden_layers=2,
        vocab_size=89, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500000.0,
        tie_word_embeddings=True), "F16", 1, 3, 17),
    ("qwen2_bias", base_config(
        "Qwen2ForCausalLM", "qwen2", hidden_size=32, intermediate_size=56,
        num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3, vocab_size=77,
        max_position_embeddings=96, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=4096,
        max_window_layers=21), "F32", 1, 4, 25),
    ("mistral_sharded_odd", base_config(
        "MistralForCausalLM", "mistral", hidden_size=30, intermediate_size=43,
        num_attention_heads=3, num_key_value_heads=1, num_hidden_layers=3, vocab_size=61,
        max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        sliding_window=None, tie_word_embeddings=False), "BF16", 3, 5, 19),
    ("llama_biases_f32", base_config(
        "LlamaForCausalLM", "llama", hidden_size=40, intermediate_size=64,
        num_attention_heads=5, num_key_value_heads=5, num_hidden_layers=2, vocab_size=53,
        max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0,
        attention_bias=True, mlp_bias=True, tie_word_embeddings=True), "F32", 1, 6, 32),
    ("llama_rope_llama3", base_config(
        "LlamaForCausalLM", "llama", hidden_size=64, intermediate_size=96,
        num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, vocab_size=71,
        max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
        tie_word_embeddings=True), "F32", 1, 7, 300),
    ("llama_rope_linear", base_config(
        "LlamaForCausalLM", "llama", hidden_size=48, intermediate_size=64,
        num_attention_heads=3, num_key_value_heads=3, num_hidden_layers=2, vocab_size=59,
        max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
        rope_scaling={"type": "linear", "factor": 2.0}, tie_word_embeddings=True),
        "F32", 1, 8, 40),
]


def write_model(out_dir, name, cfg, dtype, n_shards, seed, T):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    gen = torch.Generator().manual_seed(seed)
    w = make_weights(cfg, gen)
    # what the files hold, read back exactly
    stored = {k: v.to(DTYPES[dtype]).to(torch.float64) for k, v in w.items()}
    ids = torch.randint(0, cfg["vocab_size"], (T,), generator=gen).tolist()

    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    names = list(w.keys())
    entries = [(n, dtype, tuple(w[n].shape), tensor_bytes(w[n], dtype)) for n in names]
    if n_shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), entries, {"format": "pt"})
    else:
        per = (len(entries) + n_shards - 1) // n_shards
        weight_map = {}
        total = 0
        for s in range(n_shards):
            fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
            part = entries[s * per:(s + 1) * per]
            write_safetensors(os.path.join(d, fname), part, {"format": "pt"})
            for e in part:
                weight_map[e[0]] = fname
                total += len(e[3])
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f,
                      indent=2)
            f.write("\n")

    ref = reference_forward(cfg, stored, ids)
    f32 = reference_forward(cfg, stored, ids, torch.float32)
    f32_err = max(float((a - b.double()).abs().max()) for a, b in zip(ref, f32))
    largest = max(float(a.abs().max()) for a in ref)
    expected = [("input_ids", "I32", (T,), np.asarray(ids, dtype="<i4").tobytes())]
    for i, h in enumerate(ref):
        expected.append((f"hidden.{i}", "F32", tuple(h.shape),
                         h.float().numpy().astype("<f4").tobytes()))
    write_safetensors(os.path.join(d, "expected.safetensors"), expected,
                      {"generator": "tools/gen_model_fixtures.py", "seed": str(seed)})
    return f32_err, largest


def read_safetensors(path):
    """Reads an F32 safetensors file into {name: float64 tensor} (enough for the self-check)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        assert d["dtype"] == "F32", name
        b, e = d["data_offsets"]
        out[name] = torch.from_numpy(
            np.frombuffer(data[b:e], dtype="<f4").reshape(d["shape"]).copy()).double()
    return out


def check_against_stories260k(root):
    """The reference forward must reproduce the independent stories260k reference, which
    validates it on a real trained Llama before it is trusted on the random models."""
    d = os.path.join(root, "models", "stories260k")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    w = read_safetensors(os.path.join(d, "model.safetensors"))
    worst = 0.0
    for k in range(6):
        with open(os.path.join(d, "reference", f"ref_{k}.json")) as f:
            ref = json.load(f)
        states = reference_forward(cfg, w, ref["ids"])
        hs = torch.tensor(ref["hidden_states"]["data"], dtype=torch.float64)
        fn = torch.tensor(ref["final_norm_hidden"]["data"], dtype=torch.float64)
        want = [hs[i] for i in range(cfg["num_hidden_layers"])] + [fn]
        for a, b in zip(states, want):
            worst = max(worst, float(((a - b).abs() / b.abs().clamp(min=1.0)).max()))
    print(f"self-check on stories260k: largest relative difference {worst:.2e}")
    if worst > 1e-5:
        sys.exit("the reference forward does not reproduce stories260k; refusing to write")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
    torch.set_num_threads(1)
    check_against_stories260k(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    for name, cfg, dtype, shards, seed, T in MODELS:
        err, largest = write_model(out_dir, name, cfg, dtype, shards, seed, T)
        print(f"{name}: {dtype}, {shards} shard(s), T={T}, "
              f"|float32 torch - float64 reference| max {err:.2e}, largest |h| {largest:.2f}")


if __name__ == "__main__":
    main()
