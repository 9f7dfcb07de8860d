#!/usr/bin/python3
"""SASRec training epoch time in PyTorch, the peer for `recsys bench`.

The same model as librecsys's SASRec with the paper settings (docs/MODELS.md §2:
item + learned position embeddings, 2 causal self-attention blocks with the
'original' layer-norm placement, point-wise FFN, dropout 0.2, BCE with one
sampled negative per position, Adam lr 1e-3 betas (0.9, 0.98)) written the
way a PyTorch user would (nn.MultiheadAttention, autograd), on ML-1M with
batches of 128 users padded to 200. Prints one JSON line.

  /usr/bin/python3 bench/bench_sasrec_torch.py --threads 2 --steps 12
"""
import argparse
import gzip
import os
import json
import random
import time

import torch
import torch.nn as nn


class SASRec(nn.Module):
    def __init__(self, n_items, L, d, blocks, heads, dropout):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(L + 1, d, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.ln_a = nn.ModuleList([nn.LayerNorm(d, eps=1e-8) for _ in range(blocks)])
        self.attn = nn.ModuleList([nn.MultiheadAttention(d, heads, dropout=dropout)
                                   for _ in range(blocks)])
        self.ln_f = nn.ModuleList([nn.LayerNorm(d, eps=1e-8) for _ in range(blocks)])
        self.ffn = nn.ModuleList([nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout),
                                                nn.Linear(d, d), nn.Dropout(dropout))
                                  for _ in range(blocks)])
        self.ln_final = nn.LayerNorm(d, eps=1e-8)
        self.d = d
        self.L = L

    def forward(self, seq):
        B, L = seq.shape
        x = self.item(seq) * self.d ** 0.5
        positions = torch.arange(1, L + 1).unsqueeze(0).expand(B, L) * (seq != 0)
        x = self.drop(x + self.pos(positions))
        keep = (seq != 0).unsqueeze(-1)
        x = x * keep
        causal = ~torch.tril(torch.ones(L, L, dtype=torch.bool))
        for ln_a, attn, ln_f, ffn in zip(self.ln_a, self.attn, self.ln_f, self.ffn):
            xt = x.transpose(0, 1)
            q = ln_a(xt)
            out, _ = attn(q, xt, xt, attn_mask=causal, need_weights=False)
            xt = q + out
            x = xt.transpose(0, 1)
            n = ln_f(x)
            x = (n + ffn(n)) * keep
        return self.ln_final(x)


def load(path):
    seqs = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            u, i = line.split()
            seqs.setdefault(int(u), []).append(int(i))
    return [s[:-2] for s in seqs.values() if len(s) >= 4], max(max(s) for s in seqs.values())


def batch(train, users, L, n_items, rng):
    B = len(users)
    seq = torch.zeros(B, L, dtype=torch.long)
    pos = torch.zeros(B, L, dtype=torch.long)
    neg = torch.zeros(B, L, dtype=torch.long)
    for r, u in enumerate(users):
        s = train[u]
        inp, tgt = s[:-1][-L:], s[1:][-L:]
        seen = set(s)
        start = L - len(inp)
        seq[r, start:] = torch.tensor(inp)
        pos[r, start:] = torch.tensor(tgt)
        negs = []
        for _ in tgt:
            j = rng.randint(1, n_items)
            while j in seen:
                j = rng.randint(1, n_items)
            negs.append(j)
        neg[r, start:] = torch.tensor(negs)
    return seq, pos, neg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/ml-1m/ml-1m.txt.gz")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    train, n_items = load(args.data)
    model = SASRec(n_items, args.max_len, 50, 2, 1, 0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    bce = nn.BCEWithLogitsLoss()
    order = list(range(len(train)))
    rng.shuffle(order)
    steps_per_epoch = (len(train) + args.batch - 1) // args.batch
    times = []
    for step in range(args.steps + 2):  # two warm-up steps
        users = order[(step * args.batch) % len(order):][:args.batch]
        seq, pos, neg = batch(train, users, args.max_len, n_items, rng)
        t0 = time.perf_counter()
        f = model(seq)
        mask = pos != 0
        pl = (f * model.item(pos)).sum(-1)[mask]
        nl = (f * model.item(neg)).sum(-1)[mask]
        loss = bce(pl, torch.ones_like(pl)) + bce(nl, torch.zeros_like(nl))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"framework": f"torch {torch.__version__}", "threads": args.threads,
                      "step_seconds_median": round(med, 4),
                      "epoch_seconds_estimate": round(med * steps_per_epoch, 2),
                      "steps_per_epoch": steps_per_epoch,
                      "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")}))


if __name__ == "__main__":
    main()
