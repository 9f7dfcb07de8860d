#!/bin/sh
# Lifelong per-user adapters on MovieLens-100K, cut by time
# (docs/BENCHMARKS.md, "Lifelong adapters"). Skips when the data is absent.
#
#   D1: events up to the 80 % time quantile: the base (and stale adapters) train on them;
#   D2: events between the 80 % and 90 % quantiles (users and items of D1):
#       the "new events" of the update;
#   test: each D1 user's first TEST_K events after the 90 % quantile (items of
#       D1), each ranked (full ranking) given everything before it (D1, D2 and
#       the earlier test events as input; no model trains on test events).
# Compared: (a) the stale base, (a2) stale per-user adapters (trained on D1),
# (b) `recsys adapters update` of those adapters with D2, (c) the whole base
# fine-tuned on D1 + D2 for FT_EPOCHS more epochs (resumed from its checkpoint).
# Metrics over the users with a test event; wall time of each step.
#
#   sh bench/adapters_lifelong.sh            (env: RECSYS, DATA, OUT, EPOCHS, FT_EPOCHS, THREADS,
#                                             TEST_K, ADAPTER_LR, MIN_HISTORY, TIMES)
# DATA: `user item rating time` lines (ML-100K's u.data), or with TIMES a
# sequence file `user i1 i2 ...` and its times file of the same layout
# (Amazon Beauty: DATA=.../Beauty_items.seq.txt.gz TIMES=.../Beauty_times.seq.txt.gz).
set -eu
RECSYS=${RECSYS:-./build/examples/recsys}
DATA=${DATA:-../shared/data/ml-100k/u.data.gz}
OUT=${OUT:-/tmp/recsys_lifelong}
EPOCHS=${EPOCHS:-60}
FT_EPOCHS=${FT_EPOCHS:-5}
TEST_K=${TEST_K:-5}
THREADS=${THREADS:-2}
TIMES=${TIMES:-}
PY=${PY:-python3}
if [ ! -f "$DATA" ]; then
    echo "adapters_lifelong: $DATA not found, skipped"
    exit 0
fi
mkdir -p "$OUT"
R="nice -n 5 $RECSYS"
MODEL="--set model.type=sasrec --set model.max_len=50 --set model.dim=50 --set model.blocks=2
       --set model.dropout=0.2 --set trainer.batch_size=128 --set trainer.lr=0.001
       --set trainer.beta2=0.98 --set trainer.threads=$THREADS --set trainer.eval_every=1000"
ADAPT="--set adapter.rank=8 --set adapter.targets=q,v --set adapter.user_steps=20
       --set adapter.min_history=${MIN_HISTORY:-20} --set adapter.lr=${ADAPTER_LR:-0.001} --set trainer.threads=$THREADS"

# ---- split by time
$PY - "$DATA" "$OUT" "$TEST_K" "$TIMES" <<'EOF'
import gzip, sys
src, out, K, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ev = []
if times:  # sequence file + times file, one user a line
    with gzip.open(src, "rt") as f, gzip.open(times, "rt") as g:
        for a, b in zip(f, g):
            a, b = a.split(), b.split()
            assert a[0] == b[0] and len(a) == len(b), "sequence and times files differ"
            ev += [(int(t), int(a[0]), int(i), len(ev) + k)
                   for k, (i, t) in enumerate(zip(a[1:], b[1:]))]
else:
    with gzip.open(src, "rt") as f:
        for line in f:
            u, i, _, t = line.split()
            ev.append((int(t), int(u), int(i), len(ev)))
# (time, user, item, position in the file): ties in time keep the file's order
ts = sorted(e[0] for e in ev)
c1, c2 = ts[int(0.8 * len(ts))], ts[int(0.9 * len(ts))]
d1 = [(u, t, i) for t, u, i, k in sorted(ev, key=lambda e: (e[1], e[0], e[3])) if t <= c1]
users = {u for u, _, _ in d1}
items = {i for _, _, i in d1}
d2 = [(u, t, i) for t, u, i, k in sorted(ev, key=lambda e: (e[1], e[0], e[3]))
      if c1 < t <= c2 and u in users and i in items]
after = {}
for t, u, i, k in sorted(ev, key=lambda e: (e[0], e[3])):
    if t > c2 and u in users and i in items and len(after.setdefault(u, [])) < K:
        after[u].append((u, t, i))
after = {u: v for u, v in after.items() if v}
def write(name, *parts):
    with open(f"{out}/{name}", "w") as f:
        for part in parts:
            for u, t, i in part:
                f.write(f"{u}\t{i}\t{t}\n")
# D1's lines first in every file: the dense user and item ids stay those of D1
write("d1.txt", d1)
write("d2.txt", d2)
write("d12.txt", d1, d2)
for k in range(K):  # eval_k: the (k+1)-th test event is each user's last
    write(f"eval{k}.txt", d1, d2, [e for u in sorted(after) for e in after[u][:k + 1]])
    with open(f"{out}/test_users{k}.txt", "w") as f:
        f.write("\n".join(str(u) for u, v in after.items() if len(v) > k) + "\n")
d2u = {u for u, _, _ in d2}
print(f"split: {len(ev)} events; D1 {len(d1)} ({len(users)} users, {len(items)} items), "
      f"D2 {len(d2)} ({len(d2u)} users), test users {len(after)} "
      f"({len(d2u & set(after))} of them with D2 events), "
      f"test events {sum(len(v) for v in after.values())}")
EOF

t() { # seconds of a command, on stderr
    s=$(date +%s.%N); "$@"; e=$(date +%s.%N)
    echo "$s $e $*" | awk '{ printf "time %.1f s:", $2 - $1; for (i = 3; i <= NF && i < 12; i++) printf " %s", $i; print "" }' >&2
}
ev() { # name, eval args...: per-user ranks for every test file
    name=$1
    shift
    k=0
    while [ $k -lt "$TEST_K" ]; do
        $R eval --data "$OUT/eval$k.txt" --protocol full --split test $MODEL "$@" \
            --per-user "$OUT/r_${name}_$k.txt" >/dev/null
        k=$((k + 1))
    done
}

# (a) base on D1
t $R train --data "$OUT/d1.txt" --out "$OUT/base.rsm" $MODEL --set trainer.epochs=$EPOCHS \
    --set trainer.checkpoint="$OUT/base.ckpt" --set trainer.checkpoint_every=$EPOCHS | tail -1 | cut -c1-160
t ev base --model "$OUT/base.rsm"
# (a2) per-user adapters on D1
t $R adapt --model "$OUT/base.rsm" --data "$OUT/d1.txt" --mode per-user --out "$OUT/stale.store" $MODEL $ADAPT
t ev stale --model "$OUT/base.rsm" --adapters "$OUT/stale.store"
# (b) lifelong update with D2
cp "$OUT/stale.store" "$OUT/updated.store"
t $R adapters update --model "$OUT/base.rsm" --adapters "$OUT/updated.store" --data "$OUT/d2.txt" \
    --history "$OUT/d1.txt" $MODEL $ADAPT --skip-unknown | tail -1
t ev updated --model "$OUT/base.rsm" --adapters "$OUT/updated.store"
# (c) the whole base fine-tuned on D1 + D2
t $R train --data "$OUT/d12.txt" --resume "$OUT/base.ckpt" --out "$OUT/finetuned.rsm" $MODEL \
    --set trainer.epochs=$((EPOCHS + FT_EPOCHS)) | tail -1 | cut -c1-160
t ev finetuned --model "$OUT/finetuned.rsm"

# ---- metrics over the test events, bootstrap over users (dense ids = D1's)
$PY - "$OUT" "$TEST_K" <<'EOF'
import math, random, sys
out, K = sys.argv[1], int(sys.argv[2])
order = {}
for line in open(f"{out}/d1.txt"):
    order.setdefault(line.split("\t")[0], len(order))
names = ("base", "stale", "updated", "finetuned")
per_user = {}  # user -> name -> [ranks]
for k in range(K):
    test = open(f"{out}/test_users{k}.txt").read().split()
    for name in names:
        r = {int(a): float(b) for a, b in (l.split() for l in open(f"{out}/r_{name}_{k}.txt"))}
        for u in test:  # (users with under 4 events are not evaluated)
            if order[u] in r:
                per_user.setdefault(u, {}).setdefault(name, []).append(r[order[u]])
users = sorted(per_user)
def nd(x): return 1 / math.log2(x + 2) if x < 10 else 0.0
def hr(x): return 1.0 if x < 10 else 0.0
def mean(f, name, us):
    v = [f(x) for u in us for x in per_user[u][name]]
    return sum(v) / len(v)
rng = random.Random(1)
boots = [[users[rng.randrange(len(users))] for _ in users] for _ in range(1000)]
print(f"test users: {len(users)}, test events: {sum(len(per_user[u]['base']) for u in users)}")
print("| model | NDCG@10 | Δ vs base [95 % CI] | HR@10 |")
print("|---|---|---|---|")
for name in names:
    m = mean(nd, name, users)
    ci = ""
    if name != "base":
        d = sorted(mean(nd, name, b) - mean(nd, "base", b) for b in boots)
        ci = f"{m - mean(nd, 'base', users):+.4f} [{d[25]:+.4f}, {d[974]:+.4f}]"
    print(f"| {name} | {m:.4f} | {ci} | {mean(hr, name, users):.4f} |")
EOF
