#!/usr/bin/env bash
# Training from the pair file vs from raw tuples: the same synthetic organisation, the same history
# days, the same hyperparameters and seed; both models judged on the same later days' real activity
# against the same principals from address ranges they never use.
#   scripts/bench/pairs_quality.sh [users] [history_days] [recent_days] [seed] [extra train args...]
set -euo pipefail
B=${IPSIGHT:-${CARGO_TARGET_DIR:-target}/debug/ipsight}
USERS=${1:-200}; HIST=${2:-28}; RECENT=${3:-7}; SEED=${4:-42}; shift $(( $# < 4 ? $# : 4 ))
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
DAYS=$((HIST + RECENT))
"$B" synth cloudtrail --out "$W/ct" --users "$USERS" --days "$DAYS" --seed "$SEED" --organization >/dev/null
# Day directories of the history (the world starts 2026-01-05, one directory per account, region, day).
START=$(date -u -d 2026-01-05 +%s)
mapfile -t HIST_DIRS < <(for d in $(seq 0 $((HIST - 1))); do
  find "$W/ct" -type d -path "*/CloudTrail/*/$(date -u -d @$((START + d * 86400)) +%Y/%m/%d)"; done)
"$B" prepare cloudtrail "${HIST_DIRS[@]}" -o "$W/tuples.csv" --pairs "$W/pairs.csv" 2>"$W/prep.json"
"$B" synth pairs --users "$USERS" --days "$DAYS" --seed "$SEED" --from "$HIST" --to "$DAYS" >"$W/recent.csv"
"$B" synth pairs --users "$USERS" --days "$DAYS" --seed "$SEED" --anomalous "$(wc -l <"$W/recent.csv")" >"$W/anomalous.csv"
ENTITIES=$(cut -d, -f1 "$W/tuples.csv" | sort -u | wc -l)
echo "history: $(wc -l <"$W/tuples.csv") tuple lines, $(wc -c <"$W/tuples.csv") bytes; pair file: $(($(wc -l <"$W/pairs.csv") - 1)) lines, $(wc -c <"$W/pairs.csv") bytes; $ENTITIES entities"
sort -u "$W/recent.csv" >"$W/recent-distinct.csv"
head -n "$(wc -l <"$W/recent-distinct.csv")" "$W/anomalous.csv" >"$W/anomalous-distinct.csv"
echo "judged on: $(wc -l <"$W/recent.csv") later real tuples (and their $(wc -l <"$W/recent-distinct.csv") distinct pairs) vs as many anomalous pairs"
HP=(--num-entity-vectors $((ENTITIES * 4)) --vector-dim 32 --seed 1 --threads 1 "$@")
for kind in tuples pairs; do
  /usr/bin/time -f "%e s %M KB" "$B" train --train "$W/$kind.csv" --model "$W/$kind.ipsm" "${HP[@]}" 2>"$W/train-$kind.log" >/dev/null
  echo "$kind: $(grep -E 'pairs from|weighted samples' "$W/train-$kind.log" | head -1 | sed 's/^train: //'); train $(tail -1 "$W/train-$kind.log")"
  "$B" evaluate --model "$W/$kind.ipsm" --normal "$W/recent.csv" --anomalous "$W/anomalous.csv" 2>&1 | grep -E "^AUC|^at that" | sed "s/^/  $kind, every later tuple: /"
  "$B" evaluate --model "$W/$kind.ipsm" --normal "$W/recent-distinct.csv" --anomalous "$W/anomalous-distinct.csv" 2>&1 | grep -E "^AUC|^at that" | sed "s/^/  $kind, distinct later pairs: /"
done
