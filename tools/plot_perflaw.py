#!/usr/bin/env python3
"""Draw a Performance Law fit as SVG, with no dependencies.

    recsys perflaw fit runs.csv --holdout held.csv > fit.txt
    python3 tools/plot_perflaw.py runs.csv fit.txt --holdout held.csv -o fit.svg

Inputs: the runs CSV given to `recsys perflaw fit` (columns layers, dim, the
metric, and data or events+apen), and the fit: a file whose last JSON line is
the one `recsys perflaw fit` prints ("-" reads stdin). The plot shows the
metric against layers (or --x dim): one colour per other size, one dash
pattern per data value; fitted runs are filled dots, held-out runs hollow
squares joined to their predictions by a line.
"""
import argparse
import csv
import json
import math
import sys

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
DASHES = ["none", "6,3", "2,3", "8,3,2,3", "12,4"]


def g(x, w):
    return -1.0 / (2.0 * x ** w) - w * math.log(x)


def law(p, n, h, d):
    """P(N, h, D) of docs/MODELS.md §5."""
    return p["w1"] * g(n, p["w3"]) + p["w2"] * g(h, p["w4"]) + g(d, p["w5"]) + p["b"]


def read_runs(path, metric):
    runs = []
    with open(path, newline="") as f:
        rows = csv.DictReader(line for line in f if line.strip() and not line.startswith("#"))
        for row in rows:
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            value = row.get(metric.lower(), "")
            if value in ("", "nan"):
                continue
            if row.get("data", "") != "":
                data = float(row["data"])
            else:
                data = float(row["events"]) * float(row["apen"])
            runs.append((float(row["layers"]), float(row["dim"]), data, float(value)))
    return runs


def read_fit(path):
    text = sys.stdin.read() if path == "-" else open(path).read()
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    sys.exit("plot_perflaw: no JSON line in " + path)


def svg(runs, held, fit, metric, xaxis):
    p = fit["params"]
    xi, oi = (0, 1) if xaxis == "layers" else (1, 0)  # x field, the other size
    pts = runs + held
    xs = sorted({r[xi] for r in pts})
    others = sorted({r[oi] for r in pts})
    datas = sorted({r[2] for r in pts})

    def size(x, o):
        return (x, o) if xaxis == "layers" else (o, x)

    ys = [r[3] for r in pts] + [law(p, *size(r[xi], r[oi]), r[2]) for r in pts]
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.08 + 1e-9
    y0, y1 = y0 - pad, y1 + pad
    x0, x1 = xs[0], xs[-1]
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    W, H, ml, mr, mt, mb = 760, 480, 70, 200, 30, 50

    def sx(x):
        return ml + (x - x0) / (x1 - x0) * (W - ml - mr)

    def sy(y):
        return H - mb - (y - y0) / (y1 - y0) * (H - mt - mb)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<rect x="{ml}" y="{mt}" width="{W - ml - mr}" height="{H - mt - mb}" '
           f'fill="none" stroke="#444"/>']
    for x in xs:
        out.append(f'<text x="{sx(x):.1f}" y="{H - mb + 16}" text-anchor="middle">{x:g}</text>')
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{ml}" x2="{W - mr}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.4f}</text>')
    label = "layers N" if xaxis == "layers" else "hidden size h"
    out.append(f'<text x="{(ml + W - mr) / 2}" y="{H - 12}" text-anchor="middle">{label}</text>')
    cy = (mt + H - mb) / 2
    out.append(f'<text x="16" y="{cy}" text-anchor="middle" transform="rotate(-90 16 {cy})">'
               f'{metric}</text>')
    for a, o in enumerate(others):
        for b, d in enumerate(datas):
            line = []
            for s in range(81):
                x = x0 + (x1 - x0) * s / 80
                if x > 0:
                    line.append(f"{sx(x):.1f},{sy(law(p, *size(x, o), d)):.1f}")
            out.append(f'<polyline fill="none" stroke="{COLORS[a % 8]}" '
                       f'stroke-dasharray="{DASHES[b % 5]}" points="{" ".join(line)}"/>')
    for r in runs:
        c = COLORS[others.index(r[oi]) % 8]
        out.append(f'<circle cx="{sx(r[xi]):.1f}" cy="{sy(r[3]):.1f}" r="3.5" fill="{c}"/>')
    for r in held:
        c = COLORS[others.index(r[oi]) % 8]
        pred = law(p, *size(r[xi], r[oi]), r[2])
        out.append(f'<line x1="{sx(r[xi]):.1f}" x2="{sx(r[xi]):.1f}" y1="{sy(r[3]):.1f}" '
                   f'y2="{sy(pred):.1f}" stroke="{c}"/>')
        out.append(f'<rect x="{sx(r[xi]) - 4:.1f}" y="{sy(r[3]) - 4:.1f}" width="8" height="8" '
                   f'fill="white" stroke="{c}" stroke-width="2"/>')
    ly = mt + 10
    name = "dim" if xaxis == "layers" else "layers"
    for a, o in enumerate(others):
        out.append(f'<line x1="{W - mr + 14}" x2="{W - mr + 40}" y1="{ly}" y2="{ly}" '
                   f'stroke="{COLORS[a % 8]}" stroke-width="3"/>'
                   f'<text x="{W - mr + 46}" y="{ly + 4}">{name} {o:g}</text>')
        ly += 18
    for b, d in enumerate(datas):
        out.append(f'<line x1="{W - mr + 14}" x2="{W - mr + 40}" y1="{ly}" y2="{ly}" stroke="#333" '
                   f'stroke-dasharray="{DASHES[b % 5]}"/>'
                   f'<text x="{W - mr + 46}" y="{ly + 4}">D {d:.4g}</text>')
        ly += 18
    r2 = fit.get("r2")
    out.append(f'<text x="{W - mr + 14}" y="{ly + 8}">filled: fitted runs</text>')
    out.append(f'<text x="{W - mr + 14}" y="{ly + 26}">hollow: held out</text>')
    if r2 is not None:
        out.append(f'<text x="{W - mr + 14}" y="{ly + 44}">R² = {r2:.4f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", help="runs CSV given to recsys perflaw fit")
    ap.add_argument("fit", help="output of recsys perflaw fit (last JSON line used), - for stdin")
    ap.add_argument("--holdout", help="held-out runs CSV")
    ap.add_argument("--metric", help="metric column (default: the fit's)")
    ap.add_argument("--x", choices=["layers", "dim"], default="layers", help="x axis")
    ap.add_argument("-o", "--output", default="perflaw.svg")
    args = ap.parse_args()
    fit = read_fit(args.fit)
    metric = args.metric or fit.get("metric", "NDCG@10")
    runs = read_runs(args.runs, metric)
    held = read_runs(args.holdout, metric) if args.holdout else []
    if not runs:
        sys.exit(f"plot_perflaw: no runs with a {metric} value in {args.runs}")
    with open(args.output, "w") as f:
        f.write(svg(runs, held, fit, metric, args.x))
    print(args.output)


if __name__ == "__main__":
    main()
