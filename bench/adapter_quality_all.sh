#!/usr/bin/env bash
# The adapter quality tables of docs/BENCHMARKS.md ("Adapter quality"), end to
# end: the two frozen bases, then bench/adapter_quality.sh with the settings
# chosen on the validation split (the tuning runs are listed in
# docs/BENCHMARKS.md). Bases and outputs go to RUNS (default runs/, not
# committed); existing files are reused.
#
#   bench/adapter_quality_all.sh [ml1m] [beauty]
set -euo pipefail
RUNS=${RUNS:-runs}
RECSYS=${RECSYS:-build/examples/recsys}
export RECSYS
mkdir -p "$RUNS"
which=${*:-ml1m beauty}

base() { # config out [--set ...]
    local cfg=$1 out=$2
    shift 2
    [ -f "$out" ] || "$RECSYS" train --config "$cfg" --out "$out" --threads 1 "$@" \
        > "$out.train.jsonl"
}

for d in $which; do
    case $d in
    ml1m)
        base examples/configs/sasrec-ml1m.yaml "$RUNS/ml1m-base.ckpt" \
            --set trainer.epochs=30 --set trainer.eval_every=0
        SHARED="" BANK="" PU="adapter.lr=0.003 adapter.user_steps=50" \
        MODES="shared bank per-user per-user-shared" \
            bench/adapter_quality.sh examples/configs/sasrec-ml1m.yaml "$RUNS/ml1m-base.ckpt" \
            "$RUNS/ml1m-final" adapter.epochs=10 adapter.lr=0.01 adapter.targets=q,v \
            adapter.window=0 adapter.gate_window=200 adapter.min_history=400
        ;;
    beauty)
        base examples/configs/sasrec-beauty.yaml "$RUNS/beauty-base.ckpt"
        SHARED="" BANK="" PU="adapter.user_steps=5" \
        MODES="shared bank per-user per-user-shared" \
            bench/adapter_quality.sh examples/configs/sasrec-beauty.yaml \
            "$RUNS/beauty-base.ckpt" "$RUNS/beauty-final" adapter.epochs=2 adapter.lr=0.001 \
            adapter.targets=q,v adapter.window=0 adapter.gate_window=50 adapter.min_history=20
        ;;
    *) echo "unknown data set $d (ml1m, beauty)" >&2; exit 2 ;;
    esac
done
