#!/usr/bin/env bash
# Does a change cost speed? Steady img/s at git revision BEFORE and in this working tree, alternating, ROUNDS
# times (default 8), 300 batches each (STEPS), the default run unless ARGS says otherwise:
#   benchmarks/throughput_ab.sh 1138ac6 [ROUNDS]
# ARGS are overrides for both sides, BEFORE_ARGS and AFTER_ARGS for one side, e.g. fp32 before against the
# precision the CPU picks now (BENCHMARKS.md, issue 22):
#   ARGS="experiment=fashion_mnist_32_best trainer=cpu metrics=none" BEFORE_ARGS=trainer.precision=32-true \
#     benchmarks/throughput_ab.sh 51350e7 4
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
    side_args=$([ "$side" = before ] && echo "${BEFORE_ARGS:-}" || echo "${AFTER_ARGS:-}")
    # shellcheck disable=SC2086
    (cd "$repo" && PYTHONPATH=$repo "$py" -m dcgan_lit.train trainer.max_steps="${STEPS:-300}" \
      callbacks.throughput.warmup_batches=50 hydra.run.dir="$out/$side$round" paths.data_dir="$out/data" \
      +trainer.enable_progress_bar=false '~callbacks.progress_bar' ${ARGS:-} $side_args > "$out/$side$round.log" 2>&1)
    "$py" -c "import json; d = json.load(open('$out/$side$round/throughput.json')); print('$side', $round, round(d['steady_images_per_sec'], 1), 'img/s', d['precision'])"
  done
done
