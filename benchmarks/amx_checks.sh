#!/usr/bin/env bash
# What issues 21 and 22 still lack, measured in one go on an Intel CPU with AMX-BF16 (lscpu: amx_bf16), alone,
# about 30 minutes on 2 cores (27 on 2026-12-03). Copy summary.txt's figures into BENCHMARKS.md with this command:
#   benchmarks/amx_checks.sh PHOTOS
# PHOTOS: a folder of about 200 real photos (BENCHMARKS.md, "The data": /work/space200). Needs Fashion-MNIST
# (apt-get install dataset-fashion-mnist) and data/fid/default_1.pt (make fid-weights); installs py-spy into the
# venv if it is missing. Output: outputs/amx_checks/<time>/, one log per stage and summary.txt.
#  1. issue 22's 2x target: fashion_mnist_32_best's trainer in fp32 against what trainer.precision=auto picks
#     (bf16 here), alternated, 4 rounds of 400 batches (throughput_ab.sh); the raw step in fp32 and in bf16 in the
#     same sitting (d_call_speed.py);
#  2. the bf16 trainer's gap to the raw step (370 against 589 img/s on 2026-12-01): autocast per phase against
#     Lightning's one autocast around the step (d_call_speed.py --compare autocast), and where the bf16 trainer's
#     and the raw step's samples fall, op by op (py-spy --native, py_spy_summary.py);
#  3. the Inception at 10, 25 and 50 images a pass, fp32 (torch and ONNX Runtime) and bf16 (fid_speed.py):
#     FID-10k's time, whether metrics.batch_size=null's 10 also helps bf16, and whether ONNX Runtime (what fp32
#     scores run in on a CPU since 2026-12-02) also beats torch's fp32 on AVX-512;
#  4. issue 21's share: experiment=space on PHOTOS, seed 2, the whole run; sample_quality.json's metrics_share;
#  5. issue 22's "make train shows the speed-up": the whole default run (`python -m dcgan_lit.train`, what make
#     train runs) in fp32 against trainer.precision=auto, alternated, 2 rounds each: wall seconds and img/s.
# FORCE=1 runs it on a CPU without AMX (bf16 is emulated there, 27x slower: only to check the script); QUICK=1
# shortens every stage to a smoke test whose figures mean nothing.
set -euo pipefail
PHOTOS=${1:?usage: benchmarks/amx_checks.sh PHOTOS (a folder of ~200 real photos)}
REPO=$(cd "$(dirname "$0")/.." && pwd); PY=$REPO/.venv/bin/python; WEIGHTS=$REPO/data/fid/default_1.pt
OUT=${OUT:-$REPO/outputs/amx_checks/$(date +%Y-%m-%d_%H-%M-%S)}
QUICK=${QUICK:-0}
fail() { echo "amx_checks.sh: $*" >&2; exit 2; }
grep -qw amx_bf16 /proc/cpuinfo || [ "${FORCE:-0}" = 1 ] ||
  fail "this CPU has no amx_bf16 (lscpu); every figure here is about AMX. FORCE=1 QUICK=1 only checks the script."
[ -x "$PY" ] || fail "no $PY: run make install first"
[ -f "$WEIGHTS" ] || fail "no $WEIGHTS: run make fid-weights first"
[ -d "$PHOTOS" ] || fail "PHOTOS=$PHOTOS is not a folder of photos"
ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* > /dev/null 2>&1 ||
  fail "no Fashion-MNIST in /usr/share/datasets/fashion-mnist: apt-get install dataset-fashion-mnist"
[ -x "$REPO/.venv/bin/py-spy" ] || "$PY" -m pip install -q py-spy
mkdir -p "$OUT"
cd "$REPO"
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 STEPS=60 RAW=(--rounds 2 --steps 2) PROFILE_STEPS=60 IMAGES=(--images 20 --num 200)
  SPACE=(trainer.max_epochs=2 metrics.num_fake_train=200) DEFAULT_RUN=(trainer.max_epochs=1)
else
  ROUNDS=4 STEPS=400 RAW=(--rounds 6) PROFILE_STEPS=600 IMAGES=(--images 200) SPACE=() DEFAULT_RUN=()
fi
FM=(experiment=fashion_mnist_32_best trainer=cpu metrics=none)
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
summary "# amx_checks.sh $(git rev-parse --short HEAD) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"

echo "== 1. the trainer, fp32 against auto, alternated"
ARGS="${FM[*]}" BEFORE_ARGS=trainer.precision=32-true STEPS=$STEPS benchmarks/throughput_ab.sh HEAD "$ROUNDS" |
  tee "$OUT/1_trainer_ab.txt"
summary "$("$PY" - "$OUT/1_trainer_ab.txt" <<'EOF'
import statistics, sys
rates = {"before": [], "after": []}
for line in open(sys.argv[1]):
    side, _, rate, *_ = line.split()
    rates[side].append(float(rate))
fp32, auto = (statistics.median(rates[s]) for s in ("before", "after"))
print(f"1. fashion_mnist_32_best trainer: fp32 {fp32:.1f} img/s, auto {auto:.1f} img/s: {auto / fp32:.2f}x (target 2x)")
EOF
)"
for precision in fp32 bf16; do
  "$PY" benchmarks/d_call_speed.py "${FM[0]}" --precision "$precision" "${RAW[@]}" | tee "$OUT/1_raw_$precision.txt"
  summary "1. raw step, $precision: $(grep -E '^(two|one) D call' "$OUT/1_raw_$precision.txt" | tr '\n' ';')"
done

echo "== 2. the trainer's gap to the raw step"
"$PY" benchmarks/d_call_speed.py "${FM[0]}" --compare autocast "${RAW[@]}" | tee "$OUT/2_autocast.txt"
summary "2. $(tail -1 "$OUT/2_autocast.txt")"
# --native needs py-spy to pause the process for each sample; at 20 a second it slows the run little.
.venv/bin/py-spy record -r 20 --native --format raw -o "$OUT/2_trainer_auto.pyspy" -- "$PY" -m dcgan_lit.train \
  "${FM[@]}" trainer.max_steps="$PROFILE_STEPS" hydra.run.dir="$OUT/2_trainer_auto" > "$OUT/2_trainer_auto.log" 2>&1
.venv/bin/py-spy record -r 20 --native --format raw -o "$OUT/2_raw_bf16.pyspy" -- "$PY" benchmarks/d_call_speed.py \
  "${FM[0]}" --compare autocast "${RAW[@]}" > "$OUT/2_raw_bf16.log" 2>&1
summary "2. op by op, the trainer with trainer.precision=auto ($(grep -o '"precision": "[^"]*"' \
  "$OUT/2_trainer_auto/throughput.json")), shares of the training loop's samples:"
"$PY" benchmarks/py_spy_summary.py "$OUT/2_trainer_auto.pyspy" | tee -a "$OUT/summary.txt"
summary "2. the raw bf16 step, shares of its timed loop's samples:"
"$PY" benchmarks/py_spy_summary.py "$OUT/2_raw_bf16.pyspy" --root 'main.<locals>.run' --inside step backward |
  tee -a "$OUT/summary.txt"

echo "== 3. the Inception's batch"
for batch in 10 25 50; do
  "$PY" benchmarks/fid_speed.py --weights "$WEIGHTS" --batch-size "$batch" "${IMAGES[@]}" | tee "$OUT/3_fid_b$batch.txt"
  totals=$(grep -E '^\| \*\*total, (fp32|bf16), (cpu_graph|onnxruntime)' "$OUT/3_fid_b$batch.txt" | tr '\n' ' ')
  summary "3. batch $batch: $totals"
done

echo "== 4. experiment=space on $PHOTOS, the whole run"
"$PY" -m dcgan_lit.train experiment=space data.root="$PHOTOS" metrics.inception_weights="$WEIGHTS" seed=2 \
  hydra.run.dir="$OUT/4_space_seed2" "${SPACE[@]}" > "$OUT/4_space_seed2.log" 2>&1
summary "$("$PY" - "$OUT/4_space_seed2/sample_quality.json" <<'EOF'
import json, sys
q = json.load(open(sys.argv[1]))
last = q["scores"][-1]
print(f"4. space, seed 2: metrics {q['metrics_seconds']:.0f} s of {q['wall_seconds']:.0f} s, share "
      f"{100 * q['metrics_share']:.1f}% (target 20%); {q['protocol']} {last['fid']:.1f}, "
      f"nn_ratio {last['nn_ratio']:.2f}; Inception in {q.get('extractor_runtime')}")
EOF
)"
echo "== 5. the default run (make train), fp32 against auto, alternated"
for round in 1 2; do
  for precision in 32-true auto; do
    run="$OUT/5_default_${precision}_$round"
    start=$SECONDS
    "$PY" -m dcgan_lit.train trainer.precision="$precision" hydra.run.dir="$run" "${DEFAULT_RUN[@]}" > "$run.log" 2>&1
    summary "5. default run, round $round, trainer.precision=$precision: $((SECONDS - start)) s wall, $("$PY" -c \
      "import json; d = json.load(open('$run/throughput.json')); print(f\"{d['steady_images_per_sec']:.0f} img/s in {d['precision']}\")")"
  done
done
echo "== done: $OUT/summary.txt"
