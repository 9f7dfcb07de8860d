#!/usr/bin/env python3
"""Causal softmax attention forward + backward in PyTorch, the same shapes as
bench_attention.c: L = 50, 200, 1024 with 128, 64 and 8 sequences (batch x
heads), head size --dh. Explicit matmul + causal mask + softmax + matmul with
autograd (torch 1.13 has no scaled_dot_product_attention).

    /usr/bin/python3 bench/bench_attention_torch.py [--threads N] [--reps R] [--dh D]
                                                    [--clock wall|cpu]

Prints medians in ms over R repetitions after one warm-up. --clock cpu (one
thread only) uses the thread's CPU time, meaningful on a shared machine.
"""
import argparse
import os
import statistics
import time

torch = None  # imported in main(), after the BLAS thread count is set


def bench(L, nseq, dh, reps, drop, clock):
    g = torch.Generator().manual_seed(1)

    def rand():
        return torch.rand(nseq, L, dh, generator=g) * 2 - 1

    q, k, v = (rand().requires_grad_() for _ in range(3))
    d_out = rand()
    mask = torch.ones(L, L, dtype=torch.bool).triu(1)
    scale = dh ** -0.5
    t_fwd, t_bwd = [], []
    for r in range(reps + 1):
        q.grad = k.grad = v.grad = None
        t0 = clock()
        s = torch.matmul(q, k.transpose(1, 2)) * scale
        p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        if drop > 0:
            p = torch.nn.functional.dropout(p, drop, training=True)
        o = torch.matmul(p, v)
        t1 = clock()
        o.backward(d_out)
        t2 = clock()
        if r > 0:
            t_fwd.append((t1 - t0) * 1e3)
            t_bwd.append((t2 - t1) * 1e3)
    return statistics.median(t_fwd), statistics.median(t_bwd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dh", type=int, default=50)
    ap.add_argument("--L", type=int, default=0, help="only this length (one of the three)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    # Debian's torch does its matmuls in OpenBLAS, which has its own threads
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    global torch
    import torch as torch_module
    torch = torch_module
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} attention fwd+bwd, head size {args.dh}, "
          f"threads {torch.get_num_threads()}, median of {args.reps}, {args.clock} clock")
    print(f"{'L':>6} {'seqs':>5} | {'fwd':>9} {'bwd':>9} {'total':>9} | "
          f"{'drop_fwd':>9} {'drop_bwd':>9}")
    for L, nseq in ((50, 128), (200, 64), (1024, 8)):
        if args.L and L != args.L:
            continue
        f, b = bench(L, nseq, args.dh, args.reps, 0.0, clock)
        df, db = bench(L, nseq, args.dh, args.reps, 0.2, clock)
        print(f"{L:>6} {nseq:>5} | {f:9.3f} {b:9.3f} {f + b:9.3f} | {df:9.3f} {db:9.3f}")
    print("times in ms for all sequences")


if __name__ == "__main__":
    main()
