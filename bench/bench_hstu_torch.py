#!/usr/bin/python3
"""HSTU training step (forward, sampled softmax, backward) in PyTorch on the
CPU, at the ML-1M recipe's shapes: B = 128, L = 200, d = 50, 2 blocks, 1 head,
dqk = dv = 50, 128 negatives per position, dropout 0.2. The model and loss
are those of tools/gen_hstu_fixture.py (reference-style, dense L x L
attention), in float32 on random sequences whose lengths mimic ML-1M
(a third full, the rest uniform in 20..200).

    /usr/bin/python3 bench/bench_hstu_torch.py [--threads N] [--reps R] [--time-bias]
        [--shared] [--blocks K] [--heads H] [--dqk D] [--dv D]

Prints the median over R steps after one warm-up, split into forward,
loss and backward, and the peak RSS.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from gen_hstu_fixture import hstu_forward, sampled_softmax, tensor_list  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--L", type=int, default=200)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dqk", type=int, default=0)
    ap.add_argument("--dv", type=int, default=0)
    ap.add_argument("--negatives", type=int, default=128)
    ap.add_argument("--items", type=int, default=3416)
    ap.add_argument("--time-bias", action="store_true")
    ap.add_argument("--shared", action="store_true", help="the same negatives for every position")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d, h = args.dim, args.heads
    cfg = dict(n_items=args.items, dim=d, max_len=args.L, blocks=args.blocks, heads=h,
               dqk=args.dqk or d // h, dv=args.dv or d // h, time_bias=int(args.time_bias))
    rng = np.random.default_rng(1)
    P = {}
    for name, shape in tensor_list(cfg):
        P[name] = torch.tensor((rng.standard_normal(shape) * 0.05).astype(np.float32),
                               requires_grad=True)
    B, L, R = args.batch, args.L, args.negatives
    seq = np.zeros((B, L), np.int64)
    times = np.zeros((B, L), np.int64)
    pos = np.zeros((B, L), np.int64)
    for b in range(B):
        n = L if b % 3 == 0 else int(rng.integers(20, L))
        seq[b, L - n:] = rng.integers(1, args.items + 1, n)
        pos[b, L - n:] = rng.integers(1, args.items + 1, n)
        times[b, L - n:] = 978300000 + np.cumsum(rng.integers(0, 100000, n))
    neg = rng.integers(1, args.items + 1, (B, L, R))
    seq_t, times_t, pos_t, neg_t = (torch.tensor(a) for a in (seq, times, pos, neg))
    t_f, t_l, t_b = [], [], []
    for r in range(args.reps + 1):
        for p in P.values():
            p.grad = None
        t0 = time.perf_counter()
        Fo = hstu_forward(P, cfg, seq_t, times_t, dropout=0.2)
        t1 = time.perf_counter()
        loss = sampled_softmax(Fo, P["item_emb"], pos_t, neg_t, R, 0.05, args.shared)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        if r > 0:
            t_f.append((t1 - t0) * 1e3)
            t_l.append((t2 - t1) * 1e3)
            t_b.append((t3 - t2) * 1e3)
    fwd, los, bwd = (statistics.median(x) for x in (t_f, t_l, t_b))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__} HSTU step, threads {torch.get_num_threads()}, "
          f"B {B} L {L} d {d} blocks {args.blocks} heads {h} R {R} "
          f"{'shared' if args.shared else 'per-position'} negatives, "
          f"time bias {'on' if args.time_bias else 'off'}, {int((seq > 0).sum())} positions")
    print(f"forward {fwd:.1f} ms  loss fwd {los:.1f} ms  backward (model+loss) {bwd:.1f} ms  "
          f"total {fwd + los + bwd:.1f} ms  (median of {args.reps})  peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
