"""The random streams of a run: each DDP rank its own, and saved in checkpoints so a resumed run draws the same.

Lightning does not save RNG states in checkpoints. The GAN step draws z, the flips and DiffAugment from the
global torch RNGs, so without them a run resumed mid-epoch would continue with other noise than the uninterrupted
run. Only tensors are stored, so checkpoints still load with `torch.load(weights_only=True)`.
"""

import os

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

States = dict[str, Tensor | list[Tensor]]


def capture() -> States:
    states: States = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore(states: States) -> None:
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


class RandomState(Callback):
    """Seeds each rank's training stream when training starts, or restores the checkpoint's.

    The nets are built before this, from the run's seed on every rank, so they start identical. On one device a
    resumed run continues the interrupted run's exact stream; under DDP the checkpoint holds rank 0's stream
    only, so each rank re-seeds from its rank and the step instead.
    """

    def __init__(self) -> None:
        self._to_restore: States | None = None

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        checkpoint["rng_states"] = capture()

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self._to_restore = checkpoint.get("rng_states")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # As late as possible: nothing between here and the first batch draws random numbers.
        if self._to_restore is None:
            seed_rank(trainer.global_rank)
            return
        restore(self._to_restore)
        self._to_restore = None
        if trainer.world_size > 1:
            seed_rank(trainer.global_rank, offset=trainer.world_size * trainer.global_step)
