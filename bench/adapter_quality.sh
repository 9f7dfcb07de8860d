#!/usr/bin/env bash
# Adapter quality (docs/BENCHMARKS.md, "Adapter quality"; issue #9): a frozen
# base against a shared LoRA, the RecLoRA bank + gate, and per-user LoRAs (bank
# for the users without one), same users, paired per user.
#
#   bench/adapter_quality.sh CONFIG BASE.ckpt OUTDIR [key=value]...
#
# key=value pairs go to every `recsys adapt` as --set (adapter.lr=0.003 ...);
# SHARED=, BANK=, PU="key=value ..." add --set pairs for the shared, bank or
# per-user run only (after the common ones, so they win).
# Environment: SPLITS ("valid test"), PROTOCOLS ("sampled full"),
# MODES ("shared bank per-user per-user-shared"; per-user-shared: per-user LoRAs
# started from shared.ad, `recsys adapt --init`, shared for the rest), THREADS (1), RECSYS (build/examples/recsys),
# BOOT (2000 bootstrap resamples). Steps whose output exists are skipped, so a
# rerun only adds what is missing. Tune with SPLITS=valid; report test.
# Writes OUTDIR/<variant>.<split>.<protocol>.{json,ranks}, <mode>.adapt.json
# and OUTDIR/table.md (bench/adapter_quality_table.py).
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,16p' "$0"; exit 2; fi
CONFIG=$1 BASE=$2 OUT=$3
shift 3
RECSYS=${RECSYS:-build/examples/recsys}
SPLITS=${SPLITS:-valid test}
PROTOCOLS=${PROTOCOLS:-sampled full}
MODES=${MODES:-shared bank per-user per-user-shared}
THREADS=${THREADS:-1}
SETS=()
for kv in "$@"; do SETS+=(--set "$kv"); done
mode_sets() { # mode: the --set pairs of that mode's variable
    local v
    case $1 in shared) v=${SHARED:-} ;; bank) v=${BANK:-} ;; *) v=${PU:-} ;; esac
    for kv in $v; do printf -- '--set\n%s\n' "$kv"; done
}
mkdir -p "$OUT"
printf '%s\n' "$*" "SHARED=${SHARED:-}" "BANK=${BANK:-}" "PU=${PU:-}" > "$OUT/settings.txt"

for mode in $MODES; do
    [ -f "$OUT/$mode.ad" ] && continue
    mapfile -t extra < <(mode_sets "$mode")
    m=$mode
    [ "$mode" = per-user-shared ] && m=per-user && extra+=(--init "$OUT/shared.ad")
    "$RECSYS" adapt --config "$CONFIG" --model "$BASE" --out "$OUT/$mode.ad" --mode "$m" \
        --threads "$THREADS" "${SETS[@]}" "${extra[@]}" > "$OUT/$mode.adapt.json"
done

run_eval() { # variant split protocol [--adapters FILE]...
    local v=$1 split=$2 proto=$3
    shift 3
    [ -f "$OUT/$v.$split.$proto.ranks" ] && return 0
    "$RECSYS" eval --config "$CONFIG" --model "$BASE" --split "$split" --protocol "$proto" \
        --threads "$THREADS" --per-user "$OUT/$v.$split.$proto.ranks" "$@" \
        > "$OUT/$v.$split.$proto.json"
}

for split in $SPLITS; do
    for proto in $PROTOCOLS; do
        run_eval base "$split" "$proto"
        for mode in $MODES; do
            case $mode in
            shared) run_eval shared "$split" "$proto" --adapters "$OUT/shared.ad" ;;
            bank) run_eval bank "$split" "$proto" --adapters "$OUT/bank.ad" ;;
            per-user)
                fallback=()
                [ -f "$OUT/bank.ad" ] && fallback=(--adapters "$OUT/bank.ad")
                run_eval per-user "$split" "$proto" --adapters "$OUT/per-user.ad" "${fallback[@]}" ;;
            per-user-shared)
                run_eval per-user-shared "$split" "$proto" --adapters "$OUT/per-user-shared.ad" \
                    --adapters "$OUT/shared.ad" ;;
            esac
        done
    done
done
/usr/bin/python3 "$(dirname "$0")/adapter_quality_table.py" "$OUT" --boot "${BOOT:-2000}" \
    | tee "$OUT/table.md"
