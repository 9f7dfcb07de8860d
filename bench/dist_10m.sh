#!/usr/bin/env bash
# The 10-million-item synthetic catalogue under a per-process memory cap
# (docs/DISTRIBUTED.md): one process, then 2 ranks with dist.shard_items.
# Usage: bench/dist_10m.sh [BUILD_DIR] [CAP_KIB] [DIR]   (ONLY_RANKS=1: skip the 1-process run)
# The data: 170,000 users x 60 events over item ids 1..10,000,000, each id
# used (a sequence file written by awk into DIR; the built-in synthetic
# generator keeps only the items its walks visit, far fewer than 10^7 for a
# log that trains in minutes).
set -uo pipefail
build=${1:-build}
cap=${2:-5767168}   # ulimit -v, KiB per process (5.5 GiB)
dir=${3:-/tmp}
data=$dir/seq10m.txt
[ -f "$data" ] || awk 'BEGIN{N=10000000; U=170000; L=60; for(u=0;u<U;u++){s="u" u;
  for(k=0;k<L;k++){s=s " " ((u*L+k)%N)+1} print s}}' > "$data"
recsys=$build/examples/recsys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(train --data "$data" --set data.format=sequences --set model.max_len=20
      --set model.dim=32 --set model.blocks=1 --set trainer.batch_size=4096
      --set trainer.epochs=1 --set eval.negatives=100)
if [ "${ONLY_RANKS:-0}" != 1 ]; then
echo "## 1 process x 2 threads, ulimit -v $cap KiB"
( ulimit -v "$cap"; /usr/bin/time -f "maxrss_kib %M elapsed_s %e" "$recsys" "${args[@]}" --threads 2 ) 2>&1 |
  grep -E '^\{|maxrss|recsys|rror|^data|^model' | cut -c1-300
fi
echo "## 2 ranks x 1 thread, dist.shard_items=true, ulimit -v $cap KiB per rank"
mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader \
  bash -c "ulimit -v $cap; exec /usr/bin/time -f 'maxrss_kib %M elapsed_s %e' $recsys ${args[*]//\"/} \
           --threads 1 --distributed mpi --set dist.shard_items=true" 2>&1 | grep -E '^\{|maxrss|recsys|rror|^data' | cut -c1-300
