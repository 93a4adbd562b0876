#!/usr/bin/env bash
# Does a change cost speed? The default run's steady img/s at git revision BEFORE and in this working tree,
# alternating, ROUNDS times (default 8), 300 batches each:
#   benchmarks/throughput_ab.sh 1138ac6 [ROUNDS]
# Run it on an otherwise idle machine; each round prints one line per side.
set -euo pipefail
before_rev=${1:?usage: benchmarks/throughput_ab.sh BEFORE_REV [ROUNDS]}
rounds=${2:-8}
here=$(cd "$(dirname "$0")/.." && pwd)
py=$here/.venv/bin/python
out=$(mktemp -d)
git -C "$here" worktree add -q --detach "$out/before" "$before_rev"
trap 'git -C "$here" worktree remove --force "$out/before"; rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
  for side in before after; do
    repo=$([ "$side" = before ] && echo "$out/before" || echo "$here")
    (cd "$repo" && PYTHONPATH=$repo "$py" -m dcgan_lit.train trainer.max_steps=300 \
      callbacks.throughput.warmup_batches=50 hydra.run.dir="$out/$side$round" paths.data_dir="$out/data" \
      +trainer.enable_progress_bar=false '~callbacks.progress_bar' > "$out/$side$round.log" 2>&1)
    "$py" -c "import json; d = json.load(open('$out/$side$round/throughput.json')); print('$side', $round, round(d['steady_images_per_sec'], 1), 'img/s')"
  done
done
