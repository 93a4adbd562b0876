#!/usr/bin/env bash
# experiment=space's img/s on real photos, variants back to back: ROUNDS=2 benchmarks/space_speed.sh DATA [BEFORE]
#   DATA: a folder of photos (BENCHMARKS.md uses 200 of stellarium-data's); BEFORE: a checkout of an older commit,
#   run with this checkout's venv for the "before" row. Each run is 12 epochs, metrics off; the figure is
#   throughput.json's steady img/s (after 20 warm-up batches, every epoch-end cost included).
#   EXPERIMENT=fewshot times another experiment; NAMES="now" runs only some of the variants below.
set -euo pipefail
DATA=$1; BEFORE=${2:-}; ROUNDS=${ROUNDS:-1}; EPOCHS=${EPOCHS:-12}; EXPERIMENT=${EXPERIMENT:-space}
NAMES=${NAMES:-now now_cached now_cached_ckpt10}
REPO=$(cd "$(dirname "$0")/.." && pwd); PY=$REPO/.venv/bin/python; OUT=$REPO/outputs/space_speed
mkdir -p "$OUT"
declare -A VARIANTS=(
  [now]=""
  [now_cached]="data.gpu_cache=true"
  [now_cached_ckpt10]="data.gpu_cache=true callbacks.last_checkpoint.every_n_epochs=10"
)
run() {  # name, folder, overrides...
  local name=$1 dir=$2; shift 2
  (cd "$dir" && "$PY" -m dcgan_lit.train "experiment=$EXPERIMENT" "data.root=$DATA" metrics=none seed=1 \
      "trainer.max_epochs=$EPOCHS" "hydra.run.dir=$OUT/$EXPERIMENT-$name-r$r" "$@" > "$OUT/$EXPERIMENT-$name-r$r.log" 2>&1)
  printf '%s round %s: %s img/s\n' "$name" "$r" \
    "$("$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['steady_images_per_sec'], 1))" "$OUT/$EXPERIMENT-$name-r$r/throughput.json")"
}
for r in $(seq "$ROUNDS"); do
  if [ -n "$BEFORE" ]; then run before "$BEFORE"; fi
  for name in $NAMES; do
    # shellcheck disable=SC2086
    run "$name" "$REPO" ${VARIANTS[$name]}
  done
done
