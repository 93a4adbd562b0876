"""This CPU's limits, and how close training gets to them: the figures every CPU speed claim is held against.

    python benchmarks/cpu_roofline.py                          # peaks, FLOPs per image, the real runs' share
    python benchmarks/cpu_roofline.py --skip-runs              # peaks and FLOPs only (about a minute)
    python benchmarks/cpu_roofline.py --rounds 3 --steps 300 --experiments fashion_mnist_32_best
    python benchmarks/cpu_roofline.py --precisions 32-true     # a CPU without AMX, where bf16 runs are 27x slower

1. Peaks on all cores, fp32 and bf16: a 2048x2048 matmul, and a 3x3 convolution of 256 channels on 32x32 NHWC
   images (batch 32), forward only. The median and the best of `--repeats` timed calls.
2. The FLOPs of one GAN step per image (D on the real and the fake batch, G, both backward passes), counted by
   torch.utils.flop_counter on a real training batch of `train()`, batch 3 of the run.
3. The share of peak the real `python -m dcgan_lit.train` reaches: its steady img/s (throughput.json) times the
   FLOPs per image, over the median peak of the precision it trained in (the matmul's, the higher of the two).
   fp32 and bf16 runs are interleaved over `--rounds` rounds, because a shared machine's speed drifts by tens of
   percent within minutes; each cell is the median, with the range.

Fashion-MNIST runs need Debian's dataset-fashion-mnist (or the files under data/); `space` trains on 200
generated 128px images written to a temporary folder, since only the speed matters here.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("fashion_mnist_32", "fashion_mnist_32_best", "quickstart", "space")
PRECISIONS = ("32-true", "bf16-mixed")


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up: oneDNN picks and caches its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peaks(repeats: int) -> dict[str, dict[str, float]]:
    """{"matmul"|"conv": {"fp32"|"bf16": GFLOP/s median, "..._best": best}} on all cores."""
    out: dict[str, dict[str, float]] = {"matmul": {}, "conv": {}}
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(32, 256, 32, 32).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last).eval()
    conv_flops = 2 * 32 * 256 * 256 * 9 * 32 * 32
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with torch.no_grad():
            ad, bd = a.to(dtype), b.to(dtype)
            mm = timed(lambda ad=ad, bd=bd: ad @ bd, repeats)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                cv = timed(lambda: conv(x), repeats)
        out["matmul"][name] = 2 * n**3 / statistics.median(mm) / 1e9
        out["matmul"][f"{name}_best"] = 2 * n**3 / min(mm) / 1e9
        out["conv"][name] = conv_flops / statistics.median(cv) / 1e9
        out["conv"][f"{name}_best"] = conv_flops / min(cv) / 1e9
    return out


class CountStep(Callback):
    """FLOPs per image of one whole training batch (batch `at`), counted as torch dispatches them, written to `out`
    as JSON; stops the run after it."""

    def __init__(self, out: str, at: int = 3) -> None:
        self.out, self.at, self.counter = Path(out), at, FlopCounterMode(display=False)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object, idx: int) -> None:
        if pl_module.batches_done == self.at - 1:
            self.counter.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, out: object, batch: object, idx: int):
        if pl_module.batches_done == self.at:
            self.counter.__exit__(None, None, None)
            self.out.write_text(json.dumps({"flops_per_image": self.counter.get_total_flops() / len(batch)}))
            trainer.should_stop = True


def experiment_overrides(experiment: str, data_root: Path) -> list[str]:
    return [f"experiment={experiment}", "trainer=cpu", "metrics=none"] + (
        [f"data.root={data_root}"] if experiment == "space" else []
    )


def flops_per_image(experiment: str, data_root: Path, work: Path) -> float:
    """The real train() on the experiment's config, with CountStep among its callbacks (this file is importable
    as `cpu_roofline`: Python puts a script's folder first on the path)."""
    from dcgan_lit.train import train

    out = work / f"{experiment}-flops.json"
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[*experiment_overrides(experiment, data_root), "trainer.precision=32-true",
            "trainer.max_steps=5", "~callbacks.progress_bar", f"paths.output_dir={work / experiment}",
            "+callbacks.count_step._target_=cpu_roofline.CountStep", f"+callbacks.count_step.out={out}"])  # fmt: skip
    train(cfg)
    return json.loads(out.read_text())["flops_per_image"]


def run_speed(experiment: str, precision: str, steps: int, data_root: Path, work: Path) -> float | None:
    out = work / f"{experiment}-{precision}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "dcgan_lit.train", *experiment_overrides(experiment, data_root),
           f"trainer.precision={precision}", f"trainer.max_steps={steps}", f"hydra.run.dir={out}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {experiment} {precision}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads((out / "throughput.json").read_text())["steady_images_per_sec"]


def space_folder(root: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f} to {max(values):.0f})" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per peak")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved fp32/bf16 runs per experiment")
    parser.add_argument("--steps", type=int, default=300, help="batches per run (the first 20 are warm-up)")
    parser.add_argument("--skip-runs", action="store_true", help="peaks and FLOPs only")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS), help="of the runs")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    peak = peaks(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_root = space_folder(work / "space")
        flops = {e: flops_per_image(e, data_root, work) for e in args.experiments}
        speeds: dict[str, dict[str, list[float]]] = {e: {p: [] for p in PRECISIONS} for e in args.experiments}
        order = [p for p in PRECISIONS if p in args.precisions]
        if not args.skip_runs:
            for r in range(args.rounds):
                for e in args.experiments:
                    for p in order if r % 2 == 0 else order[::-1]:  # ABBA: drift hits both alike
                        speed = run_speed(e, p, args.steps, data_root, work)
                        print(f"  round {r + 1}: {e} {p}: {speed}", file=sys.stderr)
                        if speed is not None:
                            speeds[e][p].append(speed)

    print("| peak on all cores | fp32 GFLOP/s, median (best) | bf16 GFLOP/s, median (best) | bf16 / fp32 |")
    print("|---|---|---|---|")
    for op, label in (("matmul", "matmul 2048x2048"), ("conv", "conv 3x3, 256 ch, 32x32 NHWC, batch 32")):
        f, b = peak[op], peak[op]
        print(f"| {label} | {f['fp32']:.0f} ({f['fp32_best']:.0f}) | {b['bf16']:.0f} ({b['bf16_best']:.0f}) | "
              f"{b['bf16'] / f['fp32']:.2f}x |")  # fmt: skip
    print()
    print("| experiment | MFLOP per image per GAN step | fp32 img/s | share of fp32 peak | bf16 img/s | "
          "share of bf16 peak | bf16 / fp32 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for e in args.experiments:
        row = [e, f"{flops[e] / 1e6:.0f}"]
        medians = {}
        for p, key in zip(PRECISIONS, ("fp32", "bf16"), strict=True):
            values = speeds[e][p]
            medians[p] = statistics.median(values) if values else None
            share = f"{medians[p] * flops[e] / 1e9 / peak['matmul'][key]:.0%}" if values else "-"
            row += [median_range(values), share]
        ratio = medians["bf16-mixed"] / medians["32-true"] if all(medians.values()) else None
        row.append(f"{ratio:.2f}x" if ratio else "-")
        print("| " + " | ".join(row) + " |")
    if args.json:
        args.json.write_text(json.dumps({"peaks": peak, "flops_per_image": flops, "img_per_s": speeds}, indent=2))


if __name__ == "__main__":
    main()
