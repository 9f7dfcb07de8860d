#!/usr/bin/env bash
# `recsys recommend` throughput (docs/BENCHMARKS.md, "Serving"): a SASRec of
# the ML-1M sizes trained one epoch on synthetic data, 2,048 JSON requests of
# 200 random item ids each, top-10 with the history excluded, whole process
# (start, model load, JSON in and out) timed at 1 and 2 threads.
#
#   bench/recommend_throughput.sh [RECSYS ...]   (default build/examples/recsys)
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bins=("${@:-build/examples/recsys}")
"${bins[0]}" train --data synthetic --set data.synthetic_users=2000 \
    --set data.synthetic_items=3706 --set data.synthetic_length=205 --set model.type=sasrec \
    --set model.max_len=200 --set model.dim=50 --set model.blocks=2 --set model.heads=1 \
    --set trainer.epochs=1 --set trainer.eval_every=0 --out "$dir/m.rsm" >/dev/null 2>&1
/usr/bin/python3 - "$dir/req.jsonl" <<'PY'
import json, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for u in range(2048):
        f.write(json.dumps({"user": "u%d" % u,
                            "history": [str(random.randint(1, 3706)) for _ in range(200)]}) + "\n")
PY
for b in "${bins[@]}"; do
    for t in 1 2; do
        s=$(date +%s.%N)
        "$b" recommend --model "$dir/m.rsm" --k 10 --exclude-history --input "$dir/req.jsonl" \
            --threads "$t" > "$dir/out.jsonl"
        e=$(date +%s.%N)
        /usr/bin/python3 -c "import sys; print('{\"bench\": \"recommend\", \"recsys\": \"%s\", \"threads\": %s, \"requests_per_s\": %.0f}' % (sys.argv[1], sys.argv[2], 2048 / (float(sys.argv[4]) - float(sys.argv[3]))))" "$b" "$t" "$s" "$e"
    done
done
