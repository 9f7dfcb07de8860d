#!/usr/bin/python3
"""Generate the SASRec parity fixtures in tests/fixtures/ (run with /usr/bin/python3).

An independent PyTorch implementation of docs/MODELS.md §2, written from the
equations (explicit ops, float64): embeddings with sqrt(d) scaling and
positions counted within the left-padded row (from its end, or from its first
item), three layer-norm placements,
causal multi-head attention that ignores padded keys, FFN with ReLU, the
non-pad mask after each block, a final layer norm (padding rows zeroed), and
the BCE loss with one sampled negative per position.

For each placement it writes sasrec_<norm>.txt (and, with positions counted
from each row's first item, model.positions = start, sasrec_original_start.txt)
holding: the config, random
parameters in librecsys's tensor order and layout (tensors stacked over
blocks, linear weights [out x in], Q|K|V one [3d x d] matrix per block), a
batch (seq, start, pos, neg), the expected hidden states [B*L*d], the loss,
and torch autograd's gradient of the loss for every parameter.

Usage: /usr/bin/python3 tools/gen_sasrec_fixture.py [output_dir]
"""
import math
import os
import sys

import torch

N_ITEMS, L, D, BLOCKS, HEADS, FFN = 11, 6, 8, 2, 2, 12
EPS = 1e-8
STARTS = [0, 2, 5, 6]  # row 3 is all padding
B = len(STARTS)

TENSORS = [  # (name, per-block shape or whole shape, stacked over blocks?)
    ("item_emb", (N_ITEMS + 1, D), False),
    ("pos_emb", (L + 1, D), False),
    ("attn_ln.gamma", (D,), True),
    ("attn_ln.beta", (D,), True),
    ("attn.w_in", (3 * D, D), True),
    ("attn.b_in", (3 * D,), True),
    ("attn.w_out", (D, D), True),
    ("attn.b_out", (D,), True),
    ("ffn_ln.gamma", (D,), True),
    ("ffn_ln.beta", (D,), True),
    ("ffn.w1", (FFN, D), True),
    ("ffn.b1", (FFN,), True),
    ("ffn.w2", (D, FFN), True),
    ("ffn.b2", (D,), True),
    ("final_ln.gamma", (D,), False),
    ("final_ln.beta", (D,), False),
]


def make_params(gen):
    """Random float32-representable parameters (as float64 leaves)."""
    p = {}
    for name, shape, stacked in TENSORS:
        full = ((BLOCKS,) + shape) if stacked else shape
        if name.endswith("gamma"):
            t = 1.0 + 0.2 * torch.randn(full, generator=gen)
        elif name.endswith("beta") or ".b" in name:
            t = 0.2 * torch.randn(full, generator=gen)
        elif name.endswith("_emb"):
            t = 0.5 * torch.randn(full, generator=gen)
            t[0] = 0.0  # padding row
        else:  # weight matrix [out x in]
            t = torch.randn(full, generator=gen) / math.sqrt(full[-1])
        p[name] = t.float().double().requires_grad_(True)
    return p


def layer_norm(x, g, b):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), g, b, EPS)


def mha(p, k, q_in, kv_in, key_ok, heads=HEADS):
    """Causal multi-head attention; padded keys never receive weight."""
    B, L, D = q_in.shape
    w, bias = p["attn.w_in"][k], p["attn.b_in"][k]
    q = q_in @ w[:D].T + bias[:D]
    kk = kv_in @ w[D:2 * D].T + bias[D:2 * D]
    v = kv_in @ w[2 * D:].T + bias[2 * D:]
    dh = D // heads

    def split(t):
        return t.view(B, L, heads, dh).transpose(1, 2)  # B H L dh

    q, kk, v = split(q), split(kk), split(v)
    scores = q @ kk.transpose(-1, -2) / math.sqrt(dh)
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    allowed = causal[None, None] & key_ok[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(~allowed, -1e30), dim=-1) * allowed
    o = (weights @ v).transpose(1, 2).reshape(B, L, D)
    return o @ p["attn.w_out"][k].T + p["attn.b_out"][k]


def ffn(p, k, x):
    h = torch.relu(x @ p["ffn.w1"][k].T + p["ffn.b1"][k])
    return h @ p["ffn.w2"][k].T + p["ffn.b2"][k]


def forward(p, seq, norm, heads=HEADS, positions="end"):
    B, L = seq.shape
    D = p["item_emb"].shape[1]
    nonpad = seq != 0
    mask = nonpad.to(p["item_emb"].dtype).unsqueeze(-1)
    if positions == "start":  # model.positions = start: 1, 2, ... from each row's first item
        positions = torch.cumsum(nonpad.long(), dim=1) * nonpad
    else:  # the default: slot t of the left-padded row is position t + 1
        positions = torch.arange(1, L + 1).expand(B, L) * nonpad  # pad -> row 0
    e = p["item_emb"][seq] * math.sqrt(D) + p["pos_emb"][positions]
    e = e * mask
    for k in range(p["attn_ln.gamma"].shape[0]):  # the blocks of p
        g1, b1 = p["attn_ln.gamma"][k], p["attn_ln.beta"][k]
        g2, b2 = p["ffn_ln.gamma"][k], p["ffn_ln.beta"][k]
        if norm == "original":
            q = layer_norm(e, g1, b1)
            e = q + mha(p, k, q, e, nonpad, heads)
            n = layer_norm(e, g2, b2)
            e = n + ffn(p, k, n)
        elif norm == "post":
            e = layer_norm(e + mha(p, k, e, e, nonpad, heads), g1, b1)
            e = layer_norm(e + ffn(p, k, e), g2, b2)
        else:
            x = layer_norm(e, g1, b1)
            e = e + mha(p, k, x, x, nonpad, heads)
            e = e + ffn(p, k, layer_norm(e, g2, b2))
        e = e * mask
    return layer_norm(e, p["final_ln.gamma"], p["final_ln.beta"]) * mask


def tensor_specs(n_items, max_len, dim, blocks, ffn_dim):
    """(name, full shape) of every tensor, as recsys_model_tensor_info gives them."""
    per = {"attn_ln.gamma": (dim,), "attn_ln.beta": (dim,), "attn.w_in": (3 * dim, dim),
           "attn.b_in": (3 * dim,), "attn.w_out": (dim, dim), "attn.b_out": (dim,),
           "ffn_ln.gamma": (dim,), "ffn_ln.beta": (dim,), "ffn.w1": (ffn_dim, dim),
           "ffn.b1": (ffn_dim,), "ffn.w2": (dim, ffn_dim), "ffn.b2": (dim,)}
    out = []
    for name, _, stacked in TENSORS:
        if name == "item_emb":
            out.append((name, (n_items + 1, dim)))
        elif name == "pos_emb":
            out.append((name, (max_len + 1, dim)))
        elif stacked:
            out.append((name, (blocks,) + per[name]))
        else:
            out.append((name, (dim,)))
    return out


def _register(module, name, param):
    """Register a parameter under a dotted name ("attn_ln.gamma") so that
    state_dict() keys are librecsys's tensor names."""
    parts = name.split(".")
    for part in parts[:-1]:
        if not hasattr(module, part):
            module.add_module(part, torch.nn.Module())
        module = getattr(module, part)
    module.register_parameter(parts[-1], param)


class SASRecFixture(torch.nn.Module):
    """This file's SASRec as a torch module: its state_dict() has
    librecsys's tensor names and shapes (what `recsys export --to
    safetensors` writes and `recsys import` reads), forward() gives the
    hidden states of left-padded rows and scores() the serving scores (last
    position · item table). Used by tests/test_pytorch_roundtrip.py."""

    def __init__(self, n_items, max_len, dim, blocks, heads, ffn_dim=None, norm="original",
                 dtype=torch.float64, positions="end"):
        super().__init__()
        self.cfg = dict(n_items=n_items, max_len=max_len, dim=dim, blocks=blocks, heads=heads,
                        ffn_dim=ffn_dim or dim, norm=norm, positions=positions)
        self.p = {}
        for name, shape in tensor_specs(n_items, max_len, dim, blocks, ffn_dim or dim):
            t = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
            _register(self, name, t)
            self.p[name] = t

    def forward(self, seq):
        return forward(self.p, seq, self.cfg["norm"], self.cfg["heads"], self.cfg["positions"])

    def scores(self, seq):
        """[B, n_items+1]: the last position's hidden state · every item row."""
        return self.forward(seq)[:, -1] @ self.p["item_emb"].T


def bce(p, f, pos, neg):
    tab = p["item_emb"]
    pl = (f * tab[pos]).sum(-1)
    nl = (f * tab[neg]).sum(-1)
    m = pos != 0
    return -(torch.nn.functional.logsigmoid(pl)[m] + torch.nn.functional.logsigmoid(-nl)[m]).sum() / m.sum()


def make_batch(gen):
    seq = torch.zeros(B, L, dtype=torch.long)
    pos = torch.zeros(B, L, dtype=torch.long)
    neg = torch.zeros(B, L, dtype=torch.long)
    for r, s in enumerate(STARTS):
        n = L - s
        seq[r, s:] = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
        pos[r, s:] = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
        neg[r, s:] = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
    pos[0, 2] = 0  # a position without a target: excluded from the loss
    neg[0, 2] = 0
    return seq, pos, neg


def flat(p, key):
    return p[key].detach().reshape(-1).tolist()


def write_array(f, name, values, fmt):
    f.write("%s %d\n" % (name, len(values)))
    for i in range(0, len(values), 8):
        f.write(" ".join(fmt % v for v in values[i:i + 8]) + "\n")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    cases = [("original", "end"), ("post", "end"), ("pre", "end"), ("original", "start")]
    for i, (norm, positions) in enumerate(cases):
        gen = torch.Generator().manual_seed(1234 + i)
        p = make_params(gen)
        seq, pos, neg = make_batch(gen)
        f = forward(p, seq, norm, positions=positions)
        loss = bce(p, f, pos, neg)
        loss.backward()
        name = norm if positions == "end" else "%s_%s" % (norm, positions)
        path = os.path.join(out_dir, "sasrec_%s.txt" % name)
        with open(path, "w") as fh:
            fh.write("# SASRec parity fixture from tools/gen_sasrec_fixture.py (PyTorch %s, float64)\n"
                     % torch.__version__)
            for k, v in [("norm", norm), ("positions", positions), ("n_items", N_ITEMS), ("max_len", L), ("dim", D),
                         ("blocks", BLOCKS), ("heads", HEADS), ("ffn_dim", FFN), ("batch", B),
                         ("n_neg", 1)]:
                fh.write("%s %s\n" % (k, v))
            params = sum((flat(p, name) for name, _, _ in TENSORS), [])
            grads = sum((p[name].grad.reshape(-1).tolist() for name, _, _ in TENSORS), [])
            write_array(fh, "params", params, "%.9g")
            write_array(fh, "seq", seq.reshape(-1).tolist(), "%d")
            write_array(fh, "start", STARTS, "%d")
            write_array(fh, "pos", pos.reshape(-1).tolist(), "%d")
            write_array(fh, "neg", neg.reshape(-1).tolist(), "%d")
            write_array(fh, "hidden", f.detach().reshape(-1).tolist(), "%.12g")
            write_array(fh, "loss", [loss.item()], "%.15g")
            write_array(fh, "grads", grads, "%.12g")
        print("wrote %s (%d params, loss %.6f)" % (path, len(params), loss.item()))


if __name__ == "__main__":
    main()
