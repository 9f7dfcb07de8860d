#!/usr/bin/env bash
# Distributed training on one machine: 1 rank x 2 threads vs 2 ranks x 1
# thread (docs/DISTRIBUTED.md). Usage, from the repository root:
#   bench/dist_bench.sh [BUILD_DIR] [REPEATS] > results.txt
# (ONLY=sasrec|hstu runs one model; HSTU_EPOCHS sets the HSTU epochs, default 2)
# Prints each run's JSON lines (rank 0) and peak RSS per process (KiB).
set -uo pipefail
build=${1:-build}
reps=${2:-2}
recsys=$build/examples/recsys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader)
run() { # label, config, epochs, extra args...
  local label=$1 cfg=$2 ep=$3; shift 3
  echo "## $label 1x2"
  /usr/bin/time -f "maxrss_kib %M" "$recsys" train --config "$cfg" --set trainer.epochs=$ep \
    --set trainer.eval_every=0 --threads 2 "$@" 2>&1 | grep -E '^\{|maxrss'
  echo "## $label 2x1"
  "${mpi[@]}" /usr/bin/time -f "maxrss_kib %M" "$recsys" train --config "$cfg" \
    --set trainer.epochs=$ep --set trainer.eval_every=0 --threads 1 --distributed mpi "$@" \
    2>&1 | grep -E '^\{|maxrss'
}
only=${ONLY:-both}
for r in $(seq "$reps"); do
  [ "$only" = hstu ] || run sasrec examples/configs/sasrec-ml1m.yaml 3
  [ "$only" = sasrec ] || run hstu examples/configs/hstu-ml1m.yaml "${HSTU_EPOCHS:-2}"
done
