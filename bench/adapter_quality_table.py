#!/usr/bin/env python3
"""Markdown tables from bench/adapter_quality.sh's per-user ranks.

    bench/adapter_quality_table.py OUTDIR [--boot 2000] [--k 10]

For every split and protocol found (OUTDIR/<variant>.<split>.<protocol>.ranks,
`user rank` lines from `recsys eval --per-user`): NDCG@k and HR@k of each
variant on the users all variants share, and the mean per-user difference to
the base and to the shared LoRA with a paired bootstrap 95 % percentile
interval (the same statistic as tools/paired_bootstrap.py; numpy, seeded).
"""
import math
import os
import sys

import numpy as np

VARIANTS = [("base", "base"), ("shared", "shared LoRA"), ("bank", "bank + gate"),
            ("per-user", "per-user + bank"),
            ("per-user-shared", "per-user from shared + shared")]


def load(path):
    d = {}
    with open(path) as f:
        for line in f:
            u, r = line.split()
            d[int(u)] = float(r)
    return d


def ci(diff, boot, seed):
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(boot)
    for i in range(0, boot, 100):  # chunks bound the memory
        m = min(100, boot - i)
        means[i:i + m] = diff[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return np.percentile(means, 2.5), np.percentile(means, 97.5)


def cell(diff, boot, seed):
    lo, hi = ci(diff, boot, seed)
    mark = " **" if lo > 0 else (" ↓" if hi < 0 else "")
    return "%+.4f [%+.4f, %+.4f]%s" % (diff.mean(), lo, hi, mark)


def main(argv):
    out, boot, k = argv[0], 2000, 10
    if "--boot" in argv:
        boot = int(argv[argv.index("--boot") + 1])
    if "--k" in argv:
        k = int(argv[argv.index("--k") + 1])
    for split in ("valid", "test"):
        for proto in ("sampled", "full"):
            ranks = {}
            for v, _ in VARIANTS:
                p = os.path.join(out, "%s.%s.%s.ranks" % (v, split, proto))
                if os.path.exists(p):
                    ranks[v] = load(p)
            if "base" not in ranks or len(ranks) < 2:
                continue
            users = sorted(set.intersection(*(set(r) for r in ranks.values())))
            print("%s split, %s ranking, %d users, bootstrap %d resamples "
                  "(** interval above 0, ↓ below 0)\n" % (split, proto, len(users), boot))
            print("| variant | NDCG@%d | Δ vs base [95%% CI] | Δ vs shared [95%% CI] "
                  "| HR@%d | Δ vs base [95%% CI] | Δ vs shared [95%% CI] |" % (k, k))
            print("|---|---:|---|---|---:|---|---|")
            vals = {}
            for v in ranks:
                r = np.array([ranks[v][u] for u in users])
                vals[v] = (np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0),
                           np.where(r < k, 1.0, 0.0))
            for v, name in VARIANTS:
                if v not in vals:
                    continue
                row = ["| %s" % name]
                for mi in (0, 1):
                    x = vals[v][mi]
                    row.append("%.4f" % x.mean())
                    for ref in ("base", "shared"):
                        if v == ref or ref not in vals or (ref == "shared" and v == "base"):
                            row.append("")
                        else:
                            row.append(cell(x - vals[ref][mi], boot, 1 + mi))
                print(" | ".join(row) + " |")
            print()


if __name__ == "__main__":
    main(sys.argv[1:])
