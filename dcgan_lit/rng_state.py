"""The random number generator states a checkpoint needs so that a resumed run draws what the original would have.

Lightning does not save RNG states in checkpoints. The GAN step draws z and the flips from the global torch
RNGs, so without them a run resumed mid-epoch would continue with other noise than the uninterrupted run.
Only tensors are stored, so checkpoints still load with `torch.load(weights_only=True)`.
"""

import os

import torch
from torch import Tensor


def capture() -> dict[str, Tensor | list[Tensor]]:
    states: dict[str, Tensor | list[Tensor]] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore(states: dict[str, Tensor | list[Tensor]]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_rank(rank: int, offset: int = 0) -> int:
    """Seed this process's torch RNGs (CPU and CUDA) with the run's seed + rank + offset; returns that seed.

    Each DDP rank then draws its own z, flips and DiffAugment, as StudioGAN does (seed + global_rank); with one
    device the stream is the run's seed itself. The run's seed is the one `seed_everything` exported.
    """
    base = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
    seed = (base + rank + offset) % 2**63
    torch.manual_seed(seed)
    return seed
