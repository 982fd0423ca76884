#!/usr/bin/env bash
# Benchmark of `ipsight prepare cloudtrail` (issue 2): throughput vs gzip -dc and a Python
# implementation of the same rules, and peak RSS on one 1 GiB-uncompressed object.
#   scripts/bench/prepare.sh [WORKDIR]      (default /tmp/ipsight-bench; needs ~1.5 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/ipsight-bench}
mkdir -p "$W"
cargo build --release -q -p ipsight-cli
B=target/release/ipsight
[ -d "$W/trail" ] || $B synth bench-trail --out "$W/trail" --bytes 400000000
[ -f "$W/large.json.gz" ] || $B synth large-object --out "$W/large.json.gz" --bytes 1073741824
find "$W/trail" -path '*/CloudTrail/*' -name '*_CloudTrail_*.json.gz' | sort > "$W/files.txt"
echo "files: $(wc -l < "$W/files.txt"), compressed: $(du -sh "$W/trail" | cut -f1)"

t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "== gzip -dc alone (1 core)"
t sh -c "xargs cat < '$W/files.txt' | gzip -dc > /dev/null"
echo "== ipsight prepare cloudtrail --threads 1"
$B prepare cloudtrail "$W/trail" --threads 1 -o "$W/out1.csv"
echo "== ipsight prepare cloudtrail (all cores)"
$B prepare cloudtrail "$W/trail" -o "$W/outN.csv"
cmp "$W/out1.csv" "$W/outN.csv" && echo "outputs identical"
echo "== Python json.load baseline (1 core)"
python3 scripts/bench/prepare_baseline.py "$W/trail" > "$W/py.csv"
cmp <(sort "$W/py.csv") <(sort "$W/out1.csv") && echo "python output identical (sorted)"
echo "== peak RSS, one 1 GiB-uncompressed object"
/usr/bin/time -v $B prepare cloudtrail "$W/large.json.gz" -o "$W/large.csv" 2>&1 | grep -E 'Maximum resident|Elapsed|uncompressed_mb_per_s'
