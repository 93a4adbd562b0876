"""What one EMA update costs: the whole LightningModule (what Lightning's WeightAveraging averages) against G alone.

    python benchmarks/ema_update_cost.py experiment=fashion_mnist_32_best [--updates 100] [--rounds 5]

Builds the experiment's DCGAN from the composed config, wraps it and its G in torch's AveragedModel with the EMA
update `callbacks/ema.py` uses (`get_ema_multi_avg_fn`, buffers averaged too), and times `update_parameters`
directly: a profiler's per-call overhead would inflate this loop of small tensor ops. Prints the median
milliseconds per update of each.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ms_per_update(model: nn.Module, updates: int, rounds: int) -> tuple[float, list[float]]:
    averaged = AveragedModel(model, use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    for _ in range(5):  # the first update copies; the next ones warm the allocator up
        averaged.update_parameters(model)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(updates):
            averaged.update_parameters(model)
        times.append((time.perf_counter() - start) * 1e3 / updates)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    conf_dir = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        cfg = compose("train", overrides=args.overrides)
    model = instantiate(cfg.model)
    print(f"{torch.get_num_threads()} threads")
    for name, part in (("whole module (G, D, buffers)", model), ("G alone", model.generator)):
        tensors = len(list(part.parameters())) + len(list(part.buffers()))
        params = sum(p.numel() for p in part.parameters()) / 1e6
        median, times = ms_per_update(part, args.updates, args.rounds)
        rounds = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name}: {params:.2f} M parameters, {tensors} tensors: {median:.2f} ms per update (rounds: {rounds})")


if __name__ == "__main__":
    main()
