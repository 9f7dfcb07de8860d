#!/usr/bin/env bash
# Resource limits of the recsys tool (docs/TESTING.md): each case must fail
# quickly with a clean message, never hang or fill memory.
#   - a config that needs more memory than `ulimit -v` allows fails before
#     allocating, with the estimate;
#   - a 1 GiB line (gzip), a FIFO, /dev/zero and 100k-deep YAML are refused.
set -uo pipefail
recsys=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # name, max seconds, needle, command...
  local name=$1 secs=$2 needle=$3
  shift 3
  local t0 out rc
  t0=$(date +%s)
  out=$(timeout "$((secs + 5))" "$@" 2>&1 >/dev/null)
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $dt -gt "$secs" ] || [[ "$out" != *"$needle"* ]]; then
    echo "FAIL $name: rc $rc after ${dt}s: $out"
    fail=1
  else
    echo "ok $name (${dt}s): ${out:0:160}"
  fi
}
tiny="--set data.synthetic_users=100 --set data.synthetic_items=50 --set data.synthetic_length=10"
# 2 GiB of address space; the config would need about 14 GB of activations.
expect "ulimit -v: training" 10 "MiB (estimate)" \
  bash -c "ulimit -v 2097152; exec $recsys train $tiny --set model.max_len=2048 --set model.dim=512 --set trainer.batch_size=100"
expect "ulimit -v: model" 10 "MiB (estimate)" \
  bash -c "ulimit -v 2097152; exec $recsys train $tiny --set model.dim=65536 --set model.max_len=65536"
python3 - "$tmp/huge.gz" <<'PY'
import gzip, sys
member = gzip.compress(b"a" * (1 << 20), 1)
with open(sys.argv[1], "wb") as f:
    for _ in range(1024):
        f.write(member)
PY
expect "1 GiB line" 20 "longer than" "$recsys" train --data "$tmp/huge.gz"
mkfifo "$tmp/fifo"
expect "FIFO as --data" 5 "not a regular file" "$recsys" train --data "$tmp/fifo"
expect "FIFO as --config" 5 "not a regular file" "$recsys" train --config "$tmp/fifo"
expect "/dev/zero as --data" 5 "not a regular file" "$recsys" train --data /dev/zero
expect "/dev/zero to perflaw" 5 "not a regular file" "$recsys" perflaw fit /dev/zero
python3 -c "import sys; sys.stdout.write('[' * 100000)" > "$tmp/deep.yaml"
expect "deep YAML" 5 "nested more than" "$recsys" train --config "$tmp/deep.yaml"
head -c 900000 /dev/zero | tr '\0' '{' > "$tmp/deep2.yaml"
expect "deep YAML (flow maps)" 5 "nested more than" "$recsys" train --config "$tmp/deep2.yaml"
exit $fail
