#!/usr/bin/env bash
# The 10-million-item synthetic catalogue under a per-process memory cap
# (docs/DISTRIBUTED.md): one process, then 2 ranks with dist.shard_items.
# Usage: bench/dist_10m.sh [BUILD_DIR] [CAP_KIB]
set -uo pipefail
build=${1:-build}
cap=${2:-4194304}   # ulimit -v, KiB per process (4 GiB)
recsys=$build/examples/recsys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(train --set data.synthetic_items=10000000 --set data.synthetic_users=4000
      --set data.synthetic_length=20 --set model.max_len=20 --set model.dim=32
      --set model.blocks=1 --set trainer.batch_size=128 --set trainer.epochs=1
      --set eval.negatives=100)
echo "## 1 process x 2 threads, ulimit -v $cap KiB"
( ulimit -v "$cap"; /usr/bin/time -f "maxrss_kib %M elapsed_s %e" "$recsys" "${args[@]}" --threads 2 ) 2>&1 |
  grep -Ev '^\s*$' | tail -4
echo "## 2 ranks x 1 thread, dist.shard_items=true, ulimit -v $cap KiB per rank"
mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader \
  bash -c "ulimit -v $cap; exec /usr/bin/time -f 'maxrss_kib %M elapsed_s %e' $recsys ${args[*]} \
           --threads 1 --distributed mpi --set dist.shard_items=true" 2>&1 | grep -E '^\{|maxrss|recsys|rror'
echo "## 2 ranks x 1 thread, unsharded, ulimit -v $cap KiB per rank"
mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader \
  bash -c "ulimit -v $cap; exec /usr/bin/time -f 'maxrss_kib %M elapsed_s %e' $recsys ${args[*]} \
           --threads 1 --distributed mpi" 2>&1 | grep -E '^\{|maxrss|recsys|rror' | head -4
