#!/usr/bin/python3
"""Fixtures for tests/test_hstu.c: a tiny HSTU and its sampled-softmax loss
written independently in PyTorch, in the style of the reference code
(generative-recommenders: einsum attention, the padded relative-bias
construction, F.layer_norm, autograd for the gradients), in float64.

Weights are drawn in float32 (so C and PyTorch use the same numbers) and
exported in librecsys's tensor order and layout (the names of
rs_hstu_ops.tensors; linear weights [out x in], blocks stacked). Also
exported: a batch with timestamps, fixed negatives, the expected outputs F,
the losses (per-position and shared negatives) and the gradients of the
per-position loss with respect to every tensor.

Usage: /usr/bin/python3 tools/gen_hstu_fixture.py [outdir]   (default tests/fixtures)
File format: one record per line, "<kind> <name> <count> values...", kind
c (config integer), i (int64 array), f (float array).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

N_BUCKETS = 128


def hstu_forward(P, cfg, seq, times, dropout=0.0):
    """Outputs F [B, L, d] of the HSTU encoder; dropout (training mode) on
    the input embeddings and on U ⊙ LN(O), as the reference."""
    B, L = seq.shape
    d, h, dqk, dv = cfg["dim"], cfg["heads"], cfg["dqk"], cfg["dv"]
    N = L
    valid = seq != 0
    pos_idx = torch.where(valid, torch.arange(1, L + 1).expand(B, L), torch.zeros_like(seq))
    x = P["item_emb"][seq] * math.sqrt(d) + P["pos_emb"][pos_idx]
    x = F.dropout(x, dropout, training=dropout > 0) * valid.unsqueeze(-1)
    causal = torch.tril(torch.ones(N, N, dtype=torch.bool))
    mask = causal.unsqueeze(0) & valid.unsqueeze(2) & valid.unsqueeze(1)  # [B, N, N]
    for b in range(cfg["blocks"]):
        uvqk = P["uvqk.weight"][b].t()  # reference layout [d, cols]
        normed = F.layer_norm(x, [d], eps=1e-6)
        mm = F.silu(torch.matmul(normed, uvqk))
        u, v, q, k = torch.split(mm, [h * dv, h * dv, h * dqk, h * dqk], dim=-1)
        qk = torch.einsum("bnhd,bmhd->bhnm", q.reshape(B, N, h, dqk), k.reshape(B, N, h, dqk))
        # relative position bias, built as the reference does (pad + repeat trick)
        w = P["rab_pos"][b]
        t = F.pad(w[: 2 * N - 1], [0, N]).repeat(N)
        t = t[..., :-N].reshape(1, N, 3 * N - 2)
        r = (2 * N - 1) // 2
        bias = t[:, :, r:-r]
        if cfg["time_bias"]:
            ext = torch.cat([times, times[:, N - 1 : N]], dim=1)
            diff = ext[:, 1:].unsqueeze(2) - ext[:, :-1].unsqueeze(1)
            lg = torch.log(torch.abs(diff).clamp(min=1).double()) / 0.301
            bucket = torch.clamp(torch.floor(lg).long(), min=0, max=N_BUCKETS)
            bias = bias + P["rab_time"][b][bucket.view(-1)].view(B, N, N)
        qk = qk + bias.unsqueeze(1)
        attn = F.silu(qk) / N
        attn = attn * mask.unsqueeze(1)
        out = torch.einsum("bhnm,bmhd->bnhd", attn, v.reshape(B, N, h, dv)).reshape(B, N, h * dv)
        o_in = u * F.layer_norm(out, [h * dv], eps=1e-6)
        o_in = F.dropout(o_in, dropout, training=dropout > 0)
        x = F.linear(o_in, P["o.weight"][b], P["o.bias"][b]) + x
        x = x * valid.unsqueeze(-1)
    y = x / torch.clamp(torch.linalg.norm(x, dim=-1, keepdim=True), min=1e-6)
    return y * valid.unsqueeze(-1)


def sampled_softmax(Fo, items, pos, neg, R, tau, shared):
    """Mean over positions with a target of -log softmax([pos, negs])[0]."""
    d = Fo.shape[-1]
    e_hat = items / torch.clamp(torch.linalg.norm(items, dim=-1, keepdim=True), min=1e-6)
    f_hat = Fo / torch.clamp(torch.linalg.norm(Fo, dim=-1, keepdim=True), min=1e-6)
    m = (pos != 0).view(-1)
    f = f_hat.reshape(-1, d)[m]
    p = pos.view(-1)[m]
    if shared:
        negs = neg.view(-1)[:R].unsqueeze(0).expand(f.shape[0], R)
    else:
        negs = neg.view(-1, R)[m]
    pos_logits = (f * e_hat[p]).sum(-1) / tau
    neg_logits = torch.einsum("pd,prd->pr", f, e_hat[negs]) / tau
    neg_logits = torch.where(p.unsqueeze(1) == negs, torch.full_like(neg_logits, -5e4), neg_logits)
    logits = torch.cat([pos_logits.unsqueeze(1), neg_logits], dim=1)
    return (-F.log_softmax(logits, dim=1)[:, 0]).mean()


def tensor_list(cfg):
    d, h, dqk, dv, L, nb = cfg["dim"], cfg["heads"], cfg["dqk"], cfg["dv"], cfg["max_len"], cfg["blocks"]
    cols = 2 * h * (dv + dqk)
    t = [("item_emb", (cfg["n_items"] + 1, d)), ("pos_emb", (L + 1, d)),
         ("uvqk.weight", (nb, cols, d)), ("rab_pos", (nb, 2 * L - 1))]
    if cfg["time_bias"]:
        t.append(("rab_time", (nb, N_BUCKETS + 1)))
    t += [("o.weight", (nb, d, h * dv)), ("o.bias", (nb, d))]
    return t


def _register(module, name, param):
    """Register a parameter under a dotted name ("uvqk.weight")."""
    parts = name.split(".")
    for part in parts[:-1]:
        if not hasattr(module, part):
            module.add_module(part, torch.nn.Module())
        module = getattr(module, part)
    module.register_parameter(parts[-1], param)


class HSTUFixture(torch.nn.Module):
    """hstu_forward as a torch module: state_dict() keys and shapes are
    librecsys's (tensor_list), forward(seq, times) gives F and scores() the
    serving scores (cosine of the last position with every item). Used by
    tests/test_pytorch_roundtrip.py. cfg: n_items, dim, max_len, blocks,
    heads, dqk, dv, time_bias."""

    def __init__(self, cfg, dtype=torch.float64):
        super().__init__()
        self.cfg = dict(cfg)
        self.p = {}
        for name, shape in tensor_list(self.cfg):
            t = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
            _register(self, name, t)
            self.p[name] = t

    def forward(self, seq, times):
        return hstu_forward(self.p, self.cfg, seq, times)

    def scores(self, seq, times):
        items = self.p["item_emb"]
        e_hat = items / torch.clamp(torch.linalg.norm(items, dim=-1, keepdim=True), min=1e-6)
        return self.forward(seq, times)[:, -1] @ e_hat.T


def make_case(cfg, starts, R, seed):
    rng = np.random.default_rng(seed)
    P = {}
    for name, shape in tensor_list(cfg):
        scale = {"item_emb": 0.5, "pos_emb": 0.5, "uvqk.weight": 0.5, "rab_pos": 0.5,
                 "rab_time": 0.5, "o.weight": 0.5, "o.bias": 0.2}[name]
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        if name in ("item_emb", "pos_emb"):
            a[0] = 0
        P[name] = a
    B, L, n_items = len(starts), cfg["max_len"], cfg["n_items"]
    seq = np.zeros((B, L), np.int64)
    times = np.zeros((B, L), np.int64)
    pos = np.zeros((B, L), np.int64)
    for b, s in enumerate(starts):
        seq[b, s:] = rng.integers(1, n_items + 1, L - s)
        # gaps spread over many buckets; pad slots keep time 0 (never read)
        gaps = np.exp(rng.uniform(0, 16, L - s)).astype(np.int64)
        times[b, s:] = 1_000_000_000 + np.cumsum(gaps)
        pos[b, s:] = rng.integers(1, n_items + 1, L - s)
    if starts[0] < L - 1:
        pos[0, starts[0] + 1] = 0  # a real position without a target
    neg = rng.integers(1, n_items + 1, (B, L, R))
    neg[pos == 0] = 0
    # make sure some negatives collide with their positive (logit -5e4)
    b0, t0 = 0, L - 1
    neg[b0, t0, 1] = pos[b0, t0]
    shared = rng.integers(1, n_items + 1, R)
    shared[0] = pos[0, L - 1]
    return P, seq, times, pos, neg, shared


def compute(cfg, P, seq, times, pos, neg, shared, R, tau):
    T = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in P.items()}
    Fo = hstu_forward(T, cfg, torch.tensor(seq), torch.tensor(times))
    loss = sampled_softmax(Fo, T["item_emb"], torch.tensor(pos), torch.tensor(neg), R, tau, False)
    loss.backward()
    grads = {k: v.grad.detach().numpy() for k, v in T.items()}
    with torch.no_grad():
        loss_sh = sampled_softmax(Fo, T["item_emb"], torch.tensor(pos), torch.tensor(shared), R, tau,
                                  True)
    return Fo.detach().numpy(), float(loss), float(loss_sh), grads


def write_case(path, cfg, starts, R, tau, seed):
    P, seq, times, pos, neg, shared = make_case(cfg, starts, R, seed)
    Fo, loss, loss_sh, grads = compute(cfg, P, seq, times, pos, neg, shared, R, tau)
    with open(path, "w") as f:
        f.write("# generated by tools/gen_hstu_fixture.py (PyTorch %s); do not edit\n" % torch.__version__)
        for k in ("n_items", "dim", "max_len", "blocks", "heads", "dqk", "dv", "time_bias"):
            f.write("c %s 1 %d\n" % (k, cfg[k]))
        f.write("c batch 1 %d\nc n_neg 1 %d\n" % (len(starts), R))

        def ints(name, a):
            a = np.asarray(a).reshape(-1)
            f.write("i %s %d %s\n" % (name, a.size, " ".join(str(int(v)) for v in a)))

        def floats(name, a, fmt="%.9g"):
            a = np.asarray(a).reshape(-1)
            f.write("f %s %d %s\n" % (name, a.size, " ".join(fmt % v for v in a)))

        ints("start", starts)
        ints("seq", seq)
        ints("times", times)
        ints("pos", pos)
        ints("neg", neg)
        ints("neg_shared", shared)
        floats("temperature", [tau])
        for name, _ in tensor_list(cfg):
            floats(name, P[name])
        floats("expect_F", Fo, "%.17g")
        floats("expect_loss", [loss], "%.17g")
        floats("expect_loss_shared", [loss_sh], "%.17g")
        for name, _ in tensor_list(cfg):
            floats("grad." + name, grads[name], "%.17g")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    cfg = dict(n_items=9, dim=8, max_len=6, blocks=2, heads=2, dqk=3, dv=2, time_bias=1)
    write_case(os.path.join(out, "hstu_tiny_time.txt"), cfg, [0, 2, 5, 6], 5, 0.05, 1)
    cfg = dict(n_items=11, dim=6, max_len=7, blocks=1, heads=1, dqk=4, dv=6, time_bias=0)
    write_case(os.path.join(out, "hstu_tiny_notime.txt"), cfg, [1, 0, 3], 4, 0.05, 2)


if __name__ == "__main__":
    main()
