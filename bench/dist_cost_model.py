#!/usr/bin/env python3
"""Cost model of data-parallel and row-sharded training (docs/DISTRIBUTED.md).

Per step, one rank of N (global batch B fixed):
  compute   t_c / N  (t_c: measured single-rank step compute, B rows)
            + t_opt  (optimiser over the replicated dense part + the rank's
                      share of the table; replicated table when unsharded)
  dense     rank-ordered sum = reduce-scatter + allgather by alltoallv:
            2 (N-1)/N * D bytes, 2 (N-1) messages
  items     unsharded: allgatherv of every rank's touched rows:
                       receive (N-1) * u * (4d + 4) bytes
            sharded:   fetch + return by alltoallv: about 2 * 2 * u * 4d bytes
                       (request ids, rows there and gradients back), 4 (N-1) msgs
  u = unique items in a rank's B/N rows: I (1 - exp(-k/I)), k = (B/N) L (2 + R)
Time = compute + bytes / bandwidth + messages * alpha (no overlap)."""
import math
import sys

ALPHA = 10e-6          # s per message (MPI over Ethernet/RoCE, order of magnitude)
LINKS = {"25 Gb/s": 25e9 / 8, "100 Gb/s": 100e9 / 8}


def step(N, t_c, t_opt_dense, t_opt_table, D, I, d, B, L, R, bw, sharded):
    rows = B / N
    k = rows * L * (2 + R)
    u = I * (1 - math.exp(-k / I)) if I < 1e12 else k
    comp = t_c / N + t_opt_dense + (t_opt_table / N if sharded else t_opt_table)
    dense_b = 2 * (N - 1) / N * D
    msgs = 2 * (N - 1) + 2 * (N - 1)
    if sharded:
        item_b = 4 * u * 4 * d + 2 * u * 4
        msgs += 4 * (N - 1)
    else:
        item_b = (N - 1) * u * (4 * d + 4)
    comm = (dense_b + item_b) / bw + msgs * ALPHA
    return comp, comm, u, dense_b + item_b


def table(name, t_c, t_opt_dense, t_opt_table, D, I, d, B, L, R):
    print(f"\n{name}: t_c={t_c*1e3:.1f} ms, dense {D/1e6:.2f} MB, {I:.0f} items x d={d}, "
          f"B={B}, L={L}, R={R}")
    print("| nodes | link | mode | step ms | compute ms | comm ms | MB/rank/step | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    t1 = t_c + t_opt_dense + t_opt_table
    for N in (8, 64, 256):
        for ln, bw in LINKS.items():
            for sh in (False, True):
                comp, comm, u, b = step(N, t_c, t_opt_dense, t_opt_table, D, I, d, B, L, R, bw, sh)
                print(f"| {N} | {ln} | {'sharded' if sh else 'replicated'} | {1e3*(comp+comm):.1f} "
                      f"| {1e3*comp:.1f} | {1e3*comm:.1f} | {b/1e6:.2f} | {t1/(comp+comm):.1f} |")


if __name__ == "__main__":
    # Measured on this machine (docs/DISTRIBUTED.md): SASRec ML-1M step
    # compute on one thread, optimiser shares; arguments override t_c (s).
    t_c = float(sys.argv[1]) if len(sys.argv) > 1 else 0.150
    d = 50
    dense = 41_000 * 4
    # Adam costs about 1 ns per parameter on one core (measured: ~0.2 ms for 0.2 M).
    adam = 1e-9
    table("SASRec, ML-1M (global batch 128)", t_c, 41_000 * adam, 3417 * d * adam,
          dense, 3416, d, 128, 200, 1)
    table("SASRec, 10 M items (global batch 128)", t_c, 41_000 * adam, 10e6 * d * adam,
          dense, 10e6, d, 128, 200, 1)
    table("SASRec, 10 M items (global batch 4096)", 32 * t_c, 41_000 * adam,
          10e6 * d * adam, dense, 10e6, d, 4096, 200, 1)
