#!/usr/bin/env python3
"""Paired per-user comparison of two `recsys eval --per-user` outputs.

    tools/paired_bootstrap.py BASE.txt OTHER.txt [--k 10] [--boot 2000]

Each file holds `user rank` lines (0-based rank of the user's target).
Prints NDCG@k and HR@k of both on the users present in both, the mean
per-user difference (OTHER - BASE) and its bootstrap 95 % interval.
"""
import math
import random
import sys


def load(path):
    d = {}
    with open(path) as f:
        for line in f:
            u, r = line.split()
            d[u] = float(r)
    return d


def main(argv):
    k, boot, args = 10, 2000, []
    i = 0
    while i < len(argv):
        if argv[i] == "--k":
            k = int(argv[i + 1]); i += 2
        elif argv[i] == "--boot":
            boot = int(argv[i + 1]); i += 2
        else:
            args.append(argv[i]); i += 1
    a, b = load(args[0]), load(args[1])
    users = sorted(set(a) & set(b))
    ndcg = lambda r: 1.0 / math.log2(r + 2.0) if r < k else 0.0
    hr = lambda r: 1.0 if r < k else 0.0
    rng = random.Random(1)
    n = len(users)
    for name, f in (("NDCG@%d" % k, ndcg), ("HR@%d" % k, hr)):
        xa = [f(a[u]) for u in users]
        xb = [f(b[u]) for u in users]
        diff = [y - x for x, y in zip(xa, xb)]
        means = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) / n for _ in range(boot))
        lo, hi = means[int(0.025 * boot)], means[int(0.975 * boot) - 1]
        print("%s base %.4f other %.4f diff %+.4f [95%% CI %+.4f, %+.4f] users %d"
              % (name, sum(xa) / n, sum(xb) / n, sum(diff) / n, lo, hi, n))


if __name__ == "__main__":
    main(sys.argv[1:])
