#!/usr/bin/env bash
# Scale figures of docs/robustness.md §4: CloudTrail objects under a 128 MiB address-space limit,
# training at 1M entities with 1M/10M/100M pairs, embedded scoring cold and warm. One core
# (taskset -c 1); large files go to $DIR (default /tmp/ipsight-scale), never into git.
# Takes about 20 minutes, most of it the 100M-pair training; set SKIP_100M=1 to leave it out.
set -euo pipefail
DIR=${DIR:-/tmp/ipsight-scale}
B=${IPSIGHT:-target/release/ipsight}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR"
cargo build --release -p ipsight-cli
run() { /usr/bin/time -f "  wall %e s, peak RSS %M KB" taskset -c 1 "$@"; }

for n in 1073741824 4294967296; do
  f=$DIR/large-$n.json.gz
  [ -f "$f" ] || "$B" synth large-object --bytes $n --out "$f"
  echo "prepare $f (128 MiB address space, cap 8 GiB)"
  run prlimit --as=134217728 "$B" prepare cloudtrail --threads 1 --max-uncompressed-bytes 8589934592 "$f" -o "$DIR/out.csv"
done

for n in 1000000 10000000; do
  [ -f "$DIR/pairs-$n.csv" ] || python3 "$HERE/gen_pairs.py" $n 1000000 "$DIR/pairs-$n.csv"
done
if [ -z "${SKIP_100M:-}" ]; then
  [ -f "$DIR/pairs-100000000.csv" ] || for i in $(seq 10); do cat "$DIR/pairs-10000000.csv"; done > "$DIR/pairs-100000000.csv"
fi
for f in "$DIR"/pairs-*.csv; do
  echo "train $f (1M entity vectors, dim 128, 1 epoch, 1 thread)"
  run "$B" train --train "$f" --model "$DIR/m.ipsight" --num-entity-vectors 1000000 --vector-dim 128 --epochs 1 --threads 1 --seed 1
done
ls -l "$DIR/m.ipsight"

head -1 "$DIR/pairs-1000000.csv" > "$DIR/one.csv"
echo "score: cold start (load + 1 pair), then 1M pairs"
run "$B" score --model "$DIR/m.ipsight" "$DIR/one.csv" > /dev/null
run "$B" score --model "$DIR/m.ipsight" "$DIR/pairs-1000000.csv" > /dev/null
