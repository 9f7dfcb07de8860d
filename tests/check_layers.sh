#!/usr/bin/env bash
# lib/ is built in stages; each may include (and call) only the stages below
# it, so there are no cycles between directories:
#
#   core  <-  data  <-  nn, models  <-  checkpoint  <-  train, eval
#   core, data  <-  analysis
#   core, data, nn, models, checkpoint, train, eval  <-  adapters (LoRA, bank, store)
#   everything but analysis  <-  serve (sessions, batch scoring, thread pools)
#   core, data, nn, models, checkpoint  <-  dist (collectives, data-parallel
#   steps; used by train and eval)
#
# (core: ctx, options, config, pool, GEMM; data: datasets; nn: layers;
# models: SASRec/HSTU; checkpoint: model files; train: trainer, losses,
# optimiser; eval: metrics, sessions; analysis: ApEn, performance laws.)
# The public header and kernels/ may be included from anywhere.
set -euo pipefail
root=${1:-$(dirname "$0")/..}
declare -A allowed=(
  [core]=""
  [data]="core"
  [nn]="core"
  [models]="core data nn"
  [checkpoint]="core models"
  [train]="core data nn models checkpoint dist"
  [eval]="core data nn models dist"
  [dist]="core data nn models checkpoint"
  [analysis]="core data"
  [adapters]="core data nn models checkpoint train eval"
  [serve]="core data nn models checkpoint eval adapters"
)
fail=0
for dir in "$root"/lib/*/; do
  d=$(basename "$dir")
  [ -n "${allowed[$d]+x}" ] || { echo "lib/$d: not in the layer table of $0"; fail=1; continue; }
  while IFS=: read -r file dep; do
    [ "$dep" = "$d" ] && continue
    case " ${allowed[$d]} " in *" $dep "*) ;; *)
      echo "$file includes $dep/: lib/$d may use only: ${allowed[$d]:-nothing}"; fail=1 ;;
    esac
  done < <(grep -oE '^#include "[a-z_]+/' "$dir"*.[ch] | sed -E 's|#include "||; s|/$||' |
           grep -v ':librecsys$' || true)
done
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
